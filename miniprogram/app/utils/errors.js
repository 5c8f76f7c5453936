// API errors (API.md "Errors") and how a page shows them: always the server's Chinese message
// and a fix — the server's `fix` when it sends one, otherwise one for the status here.

class ApiError extends Error {
  constructor({ status, code, message, fix, fields, retryAfter, detail }) {
    super(message || code)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.fix = fix || ''
    this.fields = fields || null
    this.retryAfter = retryAfter || null
    this.detail = detail || {}
  }
}

// A fix for errors the server sends without one, by status.
const STATUS_FIX = {
  0: '请检查手机网络(Wi-Fi 或移动数据)是否正常,然后点「重试」。',
  400: '请返回上一步检查填写的内容,然后重试。',
  401: '登录已失效,请退出小程序后重新打开。',
  403: '您没有权限进行这项操作。如有疑问,请到当地医保经办窗口咨询或拨打 12393。',
  404: '内容不存在或已被删除,请返回后刷新页面。',
  409: '当前状态不允许这项操作,请返回后刷新,查看最新状态。',
  413: '文件太大了,请重新拍摄或选择小一些的图片后再上传。',
  415: '请上传 JPEG、PNG 格式的照片或 PDF 文件。',
  422: '请按下面的提示修改填写的内容,然后重试。',
  429: '操作太频繁了,请稍等一会儿再试。',
  500: '系统出了点问题,请稍后重试;多次失败请拨打 12393。',
  503: '系统繁忙,请稍后重试。',
}

const FIELD_LABELS = {
  name: '姓名',
  id_type: '证件类型',
  id_number: '证件号码',
  relationship: '与您的关系',
  phone: '手机号',
  reason: '申请原因',
  face_token: '人脸核验',
  member_face_token: '家人人脸核验',
  file: '文件',
  kind: '材料类型',
  quota_fen: '共济额度',
  code: '登录凭证',
  signature_image: '手写签名',
  purposes: '授权项目',
}

const FIELD_CODES = {
  REQUIRED: '不能为空',
  TOO_LONG: '太长了',
  TOO_SHORT: '太短了',
  INVALID_FORMAT: '格式不正确',
  INVALID_CHOICE: '请从选项中选择',
  INVALID_ID_NUMBER: '号码不正确,请逐位核对',
  FACE_CHECK_FAILED: '未通过',
  SELF_NOT_ALLOWED: '不能填写您本人',
}

// Codes whose fix is somewhere else in the mini-program: a button that goes there.
const ACTIONS = {
  CONSENT_REQUIRED: { label: '去隐私设置授权', url: '/pages/privacy/index' },
  BINDER_NOT_VERIFIED: { label: '去实名认证', url: '/pages/realname/index' },
  AUTHORIZER_NOT_VERIFIED: { label: '去实名认证', url: '/pages/realname/index' },
}

function fromResponse(res) {
  const body = res && res.data
  const err = (body && typeof body === 'object' && body.error) || {}
  const header = (res && res.header) || {}
  const retry = header['Retry-After'] || header['retry-after']
  const detail = Object.assign({}, err)
  ;['code', 'message', 'fix', 'fields'].forEach((k) => delete detail[k])
  return new ApiError({
    status: res.statusCode,
    code: err.code || 'HTTP_' + res.statusCode,
    message: err.message || '请求没有成功(' + res.statusCode + ')',
    fix: err.fix,
    fields: err.fields,
    retryAfter: retry ? Number(retry) : null,
    detail,
  })
}

function network(e) {
  return new ApiError({
    status: 0,
    code: 'NETWORK',
    message: '网络连接失败' + (e && e.errMsg && /timeout/.test(e.errMsg) ? '(超时)' : ''),
  })
}

function fixFor(err) {
  if (err.fix) return err.fix
  if (err.status === 429 && err.retryAfter) return '操作太频繁了,请 ' + err.retryAfter + ' 秒后再试。'
  if (STATUS_FIX[err.status]) return STATUS_FIX[err.status]
  return err.status >= 500 ? STATUS_FIX[500] : STATUS_FIX[400]
}

// What a page shows for an error: {code, message, fix, fields: [{field, label, text}], action?, retry}.
function describe(err) {
  if (!(err instanceof ApiError)) {
    // a wx API that failed (camera, file picker): its errMsg is English, so say it in Chinese
    const msg = (err && err.errMsg) || String(err && err.message ? err.message : err)
    return {
      code: 'CLIENT',
      message: '操作没有完成',
      fix: '请再试一次;如果仍然不行,请重新打开小程序。(' + msg + ')',
      fields: [],
      action: null,
      retry: true,
    }
  }
  const fields = Object.keys(err.fields || {}).map((f) => ({
    field: f,
    label: FIELD_LABELS[f] || f,
    text: FIELD_CODES[err.fields[f]] || '有误(' + err.fields[f] + ')',
  }))
  return {
    code: err.code,
    status: err.status,
    message: err.message,
    fix: fixFor(err),
    fields,
    action: ACTIONS[err.code] || null,
    retry: err.status === 0 || err.status === 429 || err.status >= 500,
  }
}

// A problem the page finds before asking the server (an incomplete form), shown the same way.
function form(message, fix) {
  return describe(new ApiError({ status: 422, code: 'FORM_INCOMPLETE', message, fix }))
}

module.exports = { form, ApiError, fromResponse, network, describe, fixFor, FIELD_LABELS }
