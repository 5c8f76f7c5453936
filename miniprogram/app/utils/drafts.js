// What the binder learnt at the precheck (required materials, face check, review) kept per
// application on the phone: the application answer does not repeat it.

const KEY = 'qq.drafts'

function all() {
  return wx.getStorageSync(KEY) || {}
}

function save(applicationId, info) {
  const d = all()
  d[applicationId] = Object.assign({}, d[applicationId] || {}, info)
  wx.setStorageSync(KEY, d)
}

function get(applicationId) {
  return all()[applicationId] || null
}

function forget(applicationId) {
  const d = all()
  delete d[applicationId]
  wx.setStorageSync(KEY, d)
}

module.exports = { save, get, forget }
