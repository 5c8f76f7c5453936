// The login session (access + refresh token) kept with wx.setStorageSync.

const KEY = 'qq.session'

function load() {
  try {
    return wx.getStorageSync(KEY) || null
  } catch (e) {
    return null
  }
}

function save(tokens) {
  const s = {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    // refresh a minute early rather than collect a 401 first
    expires_at: Date.now() + Math.max(0, (tokens.expires_in || 0) - 60) * 1000,
    user: tokens.user || (load() || {}).user || null,
  }
  wx.setStorageSync(KEY, s)
  return s
}

function clear() {
  wx.removeStorageSync(KEY)
}

function accessToken() {
  const s = load()
  return s ? s.access_token : null
}

function refreshToken() {
  const s = load()
  return s ? s.refresh_token : null
}

function expiresSoon() {
  const s = load()
  return !!s && s.expires_at <= Date.now()
}

module.exports = { KEY, load, save, clear, accessToken, refreshToken, expiresSoon }
