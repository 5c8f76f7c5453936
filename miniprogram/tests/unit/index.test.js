const { installWx } = require('../support/wx')
const { baseServer, PRIVACY_NOTICE } = require('../support/fake-server')
const { MiniProgram } = require('../support/pages')

function setup(opts) {
  const server = baseServer(opts)
  const fake = installWx({ transport: server })
  return { server, fake, mp: new MiniProgram(fake) }
}

test('home logs in with wx.login, shows the real-name state and the whole menu', async () => {
  const { server, fake, mp } = setup({ verified: false })
  await mp.open('pages/index/index')
  expect(server.last('POST', '/auth/login').body.code).toMatch(/^demo-alice-/)
  expect(fake.storage.get('qq.session').access_token).toBe('at-1')
  expect(server.last('GET', '/me').header.Authorization).toBe('Bearer at-1')
  expect(mp.text()).toContain('还没有实名认证')
  for (const t of ['添加家人', '我的家人', '办理记录', '谁绑定了我', '家庭共济', '消息通知', '我的数据与隐私']) {
    expect(mp.text()).toContain(t)
  }
  await mp.tap('#go-realname')
  expect(await mp.follow()).toBe('pages/realname/index')
})

test('a verified binder sees the family with a 医保码 button each', async () => {
  const { server, mp } = setup()
  server.on('GET', '/family/members', () => ({
    items: [{ id: 'b1', state: 'active', relationship: 'parent', relationship_label: '父母', member: { name: '李*英', id_number: '4201**********2242' } }],
  }))
  await mp.open('pages/index/index')
  expect(mp.text()).toContain('已实名认证:张*')
  expect(mp.text()).toContain('李*英(父母)')
  await mp.tap('.member-qr')
  expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/family/voucher/index?id=b1' }])
})

test('first use: the privacy notice comes first when the server serves one', async () => {
  const { mp } = setup({ privacy: true })
  await mp.open('pages/index/index')
  expect(mp.pendingNav()[0].url).toBe('/pages/privacy/index?first=1')
})

test('an accepted notice version does not ask again', async () => {
  const { server, mp } = setup({ privacy: true })
  server.on('GET', '/privacy/consents', () => ({ items: [{ purpose: 'face', version: PRIVACY_NOTICE.version }] }))
  await mp.open('pages/index/index')
  expect(mp.pendingNav()).toEqual([])
})

test('an error shows its Chinese message and fix, and 重试 loads again', async () => {
  const { server, mp } = setup()
  let fail = true
  server.on('GET', '/me', () => (fail ? server.error(503, 'SERVICE_UNAVAILABLE', '服务暂不可用') : { id: 1, realname_verified: false }))
  await mp.open('pages/index/index')
  expect(mp.text()).toContain('没有成功:服务暂不可用')
  expect(mp.text()).toContain('怎么办:系统繁忙,请稍后重试。')
  fail = false
  await mp.tap(['#error', '.error-retry'])
  expect(mp.text()).not.toContain('没有成功')
  expect(mp.text()).toContain('还没有实名认证')
})

test('a 401 refreshes once and repeats the request with the new token', async () => {
  const { server, fake, mp } = setup({ verified: false })
  let first = true
  server.on('GET', '/me', (req) => {
    if (first) {
      first = false
      return server.error(401, 'TOKEN_EXPIRED', '登录已过期')
    }
    return { id: 1, realname_verified: false, seen: req.header.Authorization }
  })
  server.on('POST', '/auth/refresh', (req) => ({ access_token: 'at-new', refresh_token: 'rt-new', expires_in: 900, got: req.body }))
  await mp.open('pages/index/index')
  expect(server.last('POST', '/auth/refresh').body).toEqual({ refresh_token: 'rt-1' })
  expect(server.last('GET', '/me').header.Authorization).toBe('Bearer at-new')
  expect(fake.storage.get('qq.session').refresh_token).toBe('rt-new')
  expect(mp.text()).toContain('还没有实名认证')
})
