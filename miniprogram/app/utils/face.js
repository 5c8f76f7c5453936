// 人脸核身 (API.md v1.1): POST /face/sessions → wx.startFacialRecognitionVerify({userIdKey})
// → its verifyResult, which the caller sends as face_token / member_face_token.

const config = require('../config')
const api = require('./api')
const compat = require('./compat')
const { ApiError } = require('./errors')

let demoCounter = 0

function faceError(e) {
  const cancelled = e && (e.errCode === 90100 || /cancel/i.test(e.errMsg || ''))
  return new ApiError({
    status: 0,
    code: cancelled ? 'FACE_CANCELLED' : 'FACE_NOT_DONE',
    message: cancelled ? '人脸核验已取消' : '人脸核验没有完成',
    fix:
      '请让本人在场,在光线充足处摘下帽子和眼镜,正对手机摄像头重新核验。' +
      '如果本人不方便刷脸,办理绑定时可以改用「户口本审核」。',
  })
}

function start(options) {
  if (config.demo && config.demo.faceResult) {
    demoCounter += 1
    return Promise.resolve(config.demo.faceResult + '-' + Date.now() + demoCounter)
  }
  return new Promise((resolve, reject) => {
    wx.startFacialRecognitionVerify(
      Object.assign({}, options, {
        checkAliveType: 2,
        success: (r) => (r && r.verifyResult ? resolve(r.verifyResult) : reject(faceError(r))),
        fail: (e) => reject(faceError(e)),
      }),
    )
  })
}

// session: {purpose: 'realname', name, id_type, id_number} | {purpose: 'member', application_id}
async function verify(session) {
  let key = null
  try {
    const s = await api.post('/face/sessions', session)
    key = s.user_id_key
  } catch (e) {
    if (!compat.missingEndpoint(e)) throw e
    // a v1 server has no sessions: the face result goes to it directly (API.md v1.1 demo note)
  }
  if (key) return start({ userIdKey: key })
  const legacy = session.name ? { name: session.name, idCardNumber: session.id_number } : {}
  return start(legacy)
}

module.exports = { verify }
