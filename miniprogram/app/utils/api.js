// The HTTP client of API.md's mini-program endpoints: JSON in and out, the Bearer token,
// one refresh on a 401 (a refresh token works once, so concurrent 401s share one refresh),
// a new wx.login when the refresh token is dead too, and ApiError for every failure.

const config = require('../config')
const session = require('./session')
const errors = require('./errors')

let inflightLogin = null
let inflightRefresh = null
let demoCounter = 0

function url(path) {
  return config.baseUrl + config.apiPrefix + path
}

function query(params) {
  const parts = Object.keys(params || {})
    .filter((k) => params[k] !== undefined && params[k] !== null && params[k] !== '')
    .map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(params[k]))
  return parts.length ? '?' + parts.join('&') : ''
}

function send(method, path, data, token) {
  const header = { 'Content-Type': 'application/json' }
  if (token) header.Authorization = 'Bearer ' + token
  return new Promise((resolve, reject) => {
    wx.request({
      url: url(path),
      method,
      data: data === undefined ? undefined : data,
      header,
      timeout: config.timeoutMs,
      success: resolve,
      fail: (e) => reject(errors.network(e)),
    })
  })
}

function loginCode() {
  if (config.demo && config.demo.user) {
    demoCounter += 1
    return Promise.resolve('demo-' + config.demo.user + '-' + Date.now() + demoCounter)
  }
  return new Promise((resolve, reject) => {
    wx.login({
      success: (r) => (r.code ? resolve(r.code) : reject(errors.network(r))),
      fail: (e) => reject(errors.network(e)),
    })
  })
}

// wx.login → POST /auth/login; one at a time.
function login() {
  if (!inflightLogin) {
    inflightLogin = (async () => {
      const code = await loginCode()
      const res = await send('POST', '/auth/login', { code })
      if (res.statusCode !== 200) throw errors.fromResponse(res)
      return session.save(res.data)
    })()
    inflightLogin.then(clearLogin, clearLogin)
  }
  return inflightLogin
}
function clearLogin() {
  inflightLogin = null
}

// POST /auth/refresh with the stored refresh token; a dead one means a new login.
function refresh() {
  if (!inflightRefresh) {
    inflightRefresh = (async () => {
      const rt = session.refreshToken()
      if (rt) {
        const res = await send('POST', '/auth/refresh', { refresh_token: rt })
        if (res.statusCode === 200) return session.save(res.data)
        if (res.statusCode !== 401 && res.statusCode !== 400) throw errors.fromResponse(res)
      }
      session.clear()
      return login()
    })()
    inflightRefresh.then(clearRefresh, clearRefresh)
  }
  return inflightRefresh
}
function clearRefresh() {
  inflightRefresh = null
}

async function token() {
  if (!session.accessToken()) await login()
  else if (session.expiresSoon()) await refresh()
  return session.accessToken()
}

// A new token after a 401 for `used`, unless another request already got one.
async function renew(used) {
  const now = session.accessToken()
  if (now && now !== used) return
  await refresh()
}

function ok(res) {
  if (res.statusCode >= 200 && res.statusCode < 300) return res.statusCode === 204 ? null : res.data
  throw errors.fromResponse(res)
}

async function request(method, path, data, opts) {
  const auth = !(opts && opts.auth === false)
  let used = auth ? await token() : null
  let res = await send(method, path, data, used)
  if (res.statusCode === 401 && auth) {
    await renew(used)
    used = session.accessToken()
    res = await send(method, path, data, used)
  }
  return ok(res)
}

function parseUpload(res) {
  let data = res.data
  if (typeof data === 'string') {
    try {
      data = data ? JSON.parse(data) : null
    } catch (e) {
      data = null
    }
  }
  return { statusCode: res.statusCode, data, header: res.header || {} }
}

function sendUpload(path, file, used, onProgress) {
  return new Promise((resolve, reject) => {
    const task = wx.uploadFile({
      url: url(path),
      filePath: file.filePath,
      name: file.name || 'file',
      formData: file.formData || {},
      header: used ? { Authorization: 'Bearer ' + used } : {},
      timeout: config.timeoutMs * 4,
      success: (res) => resolve(parseUpload(res)),
      fail: (e) => reject(errors.network(e)),
    })
    if (task && onProgress && task.onProgressUpdate) {
      task.onProgressUpdate((p) => onProgress(p.progress))
    }
  })
}

// multipart upload with wx.uploadFile; onProgress(percent) as WeChat reports it.
async function upload(path, file, onProgress) {
  let used = await token()
  let res = await sendUpload(path, file, used, onProgress)
  if (res.statusCode === 401) {
    await renew(used)
    used = session.accessToken()
    res = await sendUpload(path, file, used, onProgress)
  }
  return ok(res)
}

async function logout() {
  const t = session.accessToken()
  session.clear()
  if (t) {
    try {
      await send('POST', '/auth/logout', {}, t)
    } catch (e) {
      // the tokens are gone from the phone either way
    }
  }
}

module.exports = {
  url,
  query,
  login,
  logout,
  request,
  upload,
  get: (path, params) => request('GET', path + query(params)),
  post: (path, data) => request('POST', path, data || {}),
  del: (path) => request('DELETE', path),
}
