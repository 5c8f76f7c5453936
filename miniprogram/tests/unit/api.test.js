// The API client: Bearer token, one refresh for many 401s (a refresh token works once; a
// reuse revokes the whole family), a new login when the refresh token is dead, errors.

const { installWx } = require('../support/wx')
const { fakeServer } = require('../support/fake-server')
const api = require('../../app/utils/api')
const config = require('../../app/config')

function server() {
  const s = fakeServer()
  let logins = 0
  let refreshes = 0
  s.on('POST', '/auth/login', () => {
    logins += 1
    return { access_token: 'login-' + logins, refresh_token: 'rt-login-' + logins, expires_in: 900 }
  })
  s.on('POST', '/auth/refresh', (req) => {
    refreshes += 1
    if (req.body.refresh_token === 'dead') return s.error(401, 'REFRESH_TOKEN_INVALID', '登录已失效')
    return { access_token: 'refreshed-' + refreshes, refresh_token: 'rt-refreshed-' + refreshes, expires_in: 900 }
  })
  s.stats = () => ({ logins, refreshes })
  return s
}

test('the first call logs in with wx.login and sends the Bearer token', async () => {
  const s = server()
  s.on('GET', '/me', (req) => ({ auth: req.header.Authorization }))
  installWx({ transport: s, user: 'bob' })
  const me = await api.get('/me')
  expect(me.auth).toBe('Bearer login-1')
  expect(s.last('POST', '/auth/login').body.code).toMatch(/^demo-bob-/)
  expect(s.last('POST', '/auth/login').header.Authorization).toBeUndefined()
})

test('five requests that meet an expired token share one refresh', async () => {
  const s = server()
  s.on('GET', '/family/members', (req) => (req.header.Authorization === 'Bearer old' ? s.error(401, 'TOKEN_EXPIRED', '登录已过期') : { items: [], auth: req.header.Authorization }))
  const fake = installWx({ transport: s })
  fake.storage.set('qq.session', { access_token: 'old', refresh_token: 'rt-old', expires_at: Date.now() + 600000 })
  const all = await Promise.all([1, 2, 3, 4, 5].map(() => api.get('/family/members')))
  expect(all.map((r) => r.auth)).toEqual(Array(5).fill('Bearer refreshed-1'))
  expect(s.stats()).toEqual({ logins: 0, refreshes: 1 })
  expect(s.called('POST', '/auth/refresh')[0].body).toEqual({ refresh_token: 'rt-old' })
})

test('a token about to expire is refreshed before the request', async () => {
  const s = server()
  s.on('GET', '/me', (req) => ({ auth: req.header.Authorization }))
  const fake = installWx({ transport: s })
  fake.storage.set('qq.session', { access_token: 'old', refresh_token: 'rt-old', expires_at: Date.now() - 1 })
  expect((await api.get('/me')).auth).toBe('Bearer refreshed-1')
})

test('a dead refresh token means a new wx.login', async () => {
  const s = server()
  s.on('GET', '/me', (req) => (req.header.Authorization === 'Bearer old' ? s.error(401, 'TOKEN_EXPIRED', '登录已过期') : { auth: req.header.Authorization }))
  const fake = installWx({ transport: s })
  fake.storage.set('qq.session', { access_token: 'old', refresh_token: 'dead', expires_at: Date.now() + 600000 })
  expect((await api.get('/me')).auth).toBe('Bearer login-1')
  expect(s.stats()).toEqual({ logins: 1, refreshes: 1 })
})

test('a second 401 after renewing is an error, not a loop', async () => {
  const s = server()
  s.on('GET', '/me', () => s.error(401, 'TOKEN_INVALID', '登录凭证无效,请重新登录'))
  installWx({ transport: s })
  await expect(api.get('/me')).rejects.toMatchObject({ status: 401, code: 'TOKEN_INVALID', message: '登录凭证无效,请重新登录' })
  expect(s.called('GET', '/me')).toHaveLength(2)
})

test('a network failure is an ApiError with a Chinese message', async () => {
  const s = server()
  const fake = installWx({ transport: s })
  fake.storage.set('qq.session', { access_token: 't', refresh_token: 'r', expires_at: Date.now() + 600000 })
  fake.transport = { request: () => Promise.reject(new Error('ECONNREFUSED')) }
  await expect(api.get('/me')).rejects.toMatchObject({ status: 0, code: 'NETWORK', message: '网络连接失败' })
})

test('uploads go by wx.uploadFile with the token, report progress and parse the JSON answer', async () => {
  const s = server()
  s.on('POST', '/family/applications/:id/materials', (req) => [201, { id: 'm1', kind: req.upload.formData.kind, auth: req.header.Authorization }])
  installWx({ transport: s })
  const seen = []
  const m = await api.upload('/family/applications/a1/materials', { filePath: 'wxfile://tmp/x.png', formData: { kind: 'household_register' } }, (p) => seen.push(p))
  expect(m).toEqual({ id: 'm1', kind: 'household_register', auth: 'Bearer login-1' })
  expect(seen).toEqual([50, 100])
  expect(s.last('POST', '/family/applications/a1/materials').upload.name).toBe('file')
})

test('query strings skip empty values; 204 answers null', async () => {
  const s = server()
  s.on('GET', '/family/applications', (req) => ({ query: req.query }))
  s.on('DELETE', '/family/members/:id', () => null)
  installWx({ transport: s })
  expect((await api.get('/family/applications', { cursor: '', limit: 20, x: null })).query).toEqual({ limit: '20' })
  expect(await api.del('/family/members/b1')).toBeNull()
})

test('logout tells the server and forgets the tokens', async () => {
  const s = server()
  s.on('POST', '/auth/logout', () => null)
  const fake = installWx({ transport: s })
  fake.storage.set('qq.session', { access_token: 't1', refresh_token: 'r1', expires_at: Date.now() + 600000 })
  await api.logout()
  expect(s.last('POST', '/auth/logout').header.Authorization).toBe('Bearer t1')
  expect(fake.storage.has('qq.session')).toBe(false)
})

test('demo mode: the login code is the demo server convention, not wx.login', async () => {
  const s = server()
  s.on('GET', '/me', () => ({}))
  const fake = installWx({ transport: s })
  config.demo = { user: 'devtools', faceResult: 'ok' }
  try {
    await api.get('/me')
  } finally {
    config.demo = null
  }
  expect(fake.logins).toBe(0)
  expect(s.last('POST', '/auth/login').body.code).toMatch(/^demo-devtools-\d+$/)
})
