// 办理记录, 家庭共济, 新增共济授权, 消息通知, 我的数据与隐私.

const { installWx } = require('../support/wx')
const { baseServer } = require('../support/fake-server')
const { MiniProgram } = require('../support/pages')

function setup() {
  const server = baseServer()
  const fake = installWx({ transport: server })
  return { server, fake, mp: new MiniProgram(fake) }
}

const app = (id, state, extra) =>
  Object.assign(
    { id, state, relationship: 'parent', relationship_label: '父母', member: { name: '李*英', id_number: '4201**********2242' }, created_at: '2026-12-01T09:00:00+08:00' },
    extra || {},
  )

describe('办理记录', () => {
  test('each application shows its state in words and opens the step it waits for', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/applications', () => ({
      items: [
        app('a1', 'needs_action', { failure: { code: 'FACE_CHECK_FAILED', message: '人脸核验未通过', fix: '…' } }),
        app('a2', 'materials'),
        app('a3', 'active'),
      ],
    }))
    await mp.open('pages/applications/index')
    const t = mp.text()
    expect(t).toContain('! 需要您处理')
    expect(t).toContain('原因:人脸核验未通过')
    expect(t).toContain('✓ 绑定成功')
    expect(mp.data.items.map((i) => i.url)).toEqual([
      '/pages/bind/submit/index?id=a1',
      '/pages/bind/materials/index?id=a2',
      '/pages/bind/submit/index?id=a3',
    ])
    expect(mp.exists('#more')).toBe(false) // a v1 server: no next_cursor
  })

  test('more pages through next_cursor', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/applications', (req) => (req.query.cursor === 'c1' ? { items: [app('a2', 'failed')], next_cursor: null } : { items: [app('a1', 'active')], next_cursor: 'c1' }))
    await mp.open('pages/applications/index')
    await mp.tap('#more')
    expect(server.last('GET', '/family/applications').query).toEqual({ limit: '20', cursor: 'c1' })
    expect(mp.data.items.map((i) => i.id)).toEqual(['a1', 'a2'])
    expect(mp.exists('#more')).toBe(false)
  })
})

describe('家庭共济', () => {
  const AUTH = {
    id: 'm1',
    member: { name: '李*英', id_number: '4201**********2242', region_code: '420100' },
    relationship: 'parent',
    state: 'active',
    cross_province: false,
    notice_version: '2026-01',
    created_at: '2026-12-01T09:00:00+08:00',
    revocable_from: '2027-03-01T00:00:00+08:00',
  }

  test('both directions, the local unbind lock in words, and revoking', async () => {
    const { server, fake, mp } = setup()
    let items = [AUTH]
    server.on('GET', '/mutual-aid/authorizations', () => ({
      items,
      received: [{ id: 'r1', authorizer: { name: '王*', id_number: '4201**********2622', region_code: '420100' }, relationship: 'spouse', created_at: '2026-11-01T00:00:00+08:00' }],
    }))
    server.on('DELETE', '/mutual-aid/authorizations/:id', () => {
      items = [Object.assign({}, AUTH, { state: 'revoked' })]
      return null
    })
    await mp.open('pages/mutual-aid/index')
    const t = mp.text()
    expect(t).toContain('李*英(父母)')
    expect(t).toContain('✓ 生效中')
    expect(t).toContain('2027年3月1日 起可以解除')
    expect(t).toContain('王*(配偶)')
    await mp.tap('.revoke')
    expect(server.called('DELETE', '/mutual-aid/authorizations/m1')).toHaveLength(1)
    expect(mp.text()).toContain('— 已解除')
    expect(fake.modals[0].title).toBe('解除共济授权')
  })

  test('a refused revoke shows the lock’s message and fix', async () => {
    const { server, mp } = setup()
    server.on('GET', '/mutual-aid/authorizations', () => ({ items: [AUTH], received: [] }))
    server.on('DELETE', '/mutual-aid/authorizations/:id', () => server.error(409, 'UNBIND_LOCKED', '绑定未满 3 个月,暂不能解除', { fix: '请于 2027年3月1日 后再解除' }))
    await mp.open('pages/mutual-aid/index')
    await mp.tap('.revoke')
    expect(mp.text()).toContain('没有成功:绑定未满 3 个月,暂不能解除')
    expect(mp.text()).toContain('怎么办:请于 2027年3月1日 后再解除')
  })

  test('authorizing: the notice read to its end and accepted, the quota in 分, the notice version and hash sent', async () => {
    const { server, mp } = setup()
    const N = { version: '2026-01', title: '职工医保个人账户家庭共济绑定告知书', text: '一、家庭共济是指……', sha256: 'c'.repeat(64) }
    server.on('GET', '/mutual-aid/notice', () => N)
    server.on('POST', '/mutual-aid/authorizations', (req) => [201, Object.assign({}, AUTH, { got: req.body })])
    await mp.open('pages/mutual-aid/authorize/index')
    await mp.tap('#submit')
    expect(mp.text()).toContain('请先读完并同意共济绑定告知书')
    await mp.fire('#notice-text', 'scrolltolower')
    await mp.fire('#agree', 'change', { value: ['agree'] })
    await mp.pick('#relationship', 3) // sibling, where the region allows it
    await mp.type('#name', '张丽')
    await mp.type('#id-number', '420102199003071232')
    await mp.type('#quota', '500.5')
    await mp.tap('#submit')
    expect(server.last('POST', '/mutual-aid/authorizations').body).toEqual({
      name: '张丽',
      id_type: 'resident_id',
      id_number: '420102199003071232',
      relationship: 'sibling',
      notice_version: '2026-01',
      notice_sha256: N.sha256,
      quota_fen: 50050,
    })
    expect(mp.text()).toContain('✓ 已授权 李*英 使用您的个人账户余额')
  })

  test('a policy refusal names the first blocker and its fix', async () => {
    const { server, mp } = setup()
    server.on('GET', '/mutual-aid/notice', () => ({ version: 'v', title: 't', text: 'x', sha256: 'd'.repeat(64) }))
    server.on('POST', '/mutual-aid/authorizations', () =>
      server.error(409, 'FAMILY_SIZE_LIMIT', '共济家庭成员已达上限(7 人)', { fix: '请先解除一位家人的授权', blocking: [] }),
    )
    await mp.open('pages/mutual-aid/authorize/index')
    await mp.fire('#notice-text', 'scrolltolower')
    await mp.fire('#agree', 'change', { value: ['agree'] })
    await mp.pick('#relationship', 0)
    await mp.type('#name', '李秀英')
    await mp.type('#id-number', '420102195806122242')
    await mp.tap('#submit')
    expect(mp.text()).toContain('没有成功:共济家庭成员已达上限(7 人)')
    expect(mp.text()).toContain('怎么办:请先解除一位家人的授权')
  })
})

describe('消息通知', () => {
  const notice = (id, state, extra) =>
    Object.assign(
      {
        id,
        kind: 'family_settlement',
        state,
        title: '家人就医结算通知',
        created_at: '2026-12-02T10:31:00+08:00',
        data: { member_name: '李*英', institution: '演示人民医院', setl_time: '2026-12-02T10:30:00+08:00', medfee_fen: 15000, psn_part_fen: 5000 },
      },
      extra || {},
    )

  test('every delivery state in words; the notice a message opened comes first, expanded', async () => {
    const { server, mp } = setup()
    server.on('GET', '/notices', () => ({
      items: [
        notice('n1', 'delivered'),
        notice('n2', 'failed', { reason: '用户拒收', errcode: 43101 }),
        notice('n3', 'undeliverable', { reason: '用户未关注公众号且未订阅消息' }),
        notice('n4', 'pending', { kind: 'member_bound', title: '' }),
        notice('n5', 'sent'),
      ],
    }))
    await mp.open('pages/notices/index?id=n5')
    expect(mp.data.items[0].id).toBe('n5')
    expect(mp.data.items[0].open).toBe(true)
    const t = mp.text()
    for (const s of ['✓ 已送达', '✕ 发送失败', '✕ 无法送达', '… 等待发送', '→ 已发送']) expect(t).toContain(s)
    expect(t).toContain('发送情况:用户拒收(43101)')
    expect(t).toContain('您被添加为亲情账户成员')
    expect(t).toContain('医疗费:150.00 元')
    await mp.tap('#notice-n1')
    expect(mp.data.items.find((i) => i.id === 'n1').open).toBe(true)
  })

  test('subscribing after a tap reports WeChat’s answers (accept / reject) to the server', async () => {
    const { server, fake, mp } = setup()
    server.on('GET', '/notices', () => ({ items: [] }))
    server.on('POST', '/notices/subscriptions', () => ({ grants: {} }))
    fake.subscribeAnswer = 'reject'
    await mp.open('pages/notices/index')
    expect(mp.text()).toContain('还没有通知')
    await mp.tap('#subscribe')
    expect(fake.subscribeCalls).toEqual([['DEMO_MP_FAMILY_SETTLEMENT', 'DEMO_MP_REVERSAL', 'DEMO_MP_MEMBER_SETTLEMENT']])
    expect(server.last('POST', '/notices/subscriptions').body.results).toEqual({
      DEMO_MP_FAMILY_SETTLEMENT: 'reject',
      DEMO_MP_REVERSAL: 'reject',
      DEMO_MP_MEMBER_SETTLEMENT: 'reject',
    })
  })
})

describe('我的数据与隐私', () => {
  test('export: the JSON saved to a file, its sections named, sent to a chat or copied', async () => {
    const { server, fake, mp } = setup()
    const data = { user: { id: 1 }, applications: [{ id: 'a1' }], notices: [{}, {}], consents: [] }
    server.on('GET', '/me/export', () => data)
    await mp.open('pages/me/index')
    await mp.tap('#export')
    const t = mp.text()
    expect(t).toContain('✓ 已生成')
    expect(t).toContain('· 绑定申请 1 条')
    expect(t).toContain('· 消息通知 2 条')
    const file = mp.data.exported.filePath
    expect(JSON.parse(fake.files.get(file))).toEqual(data)
    await mp.tap('#share-file')
    expect(fake.shared[0].filePath).toBe(file)
    expect(fake.shared[0].fileName).toMatch(/^我的数据-\d{8}\.json$/)
    await mp.tap('#copy')
    expect(JSON.parse(fake.clipboard)).toEqual(data)
  })

  test('deleting the account: a clear warning, then what the server did, and the session is gone', async () => {
    const { server, fake, mp } = setup()
    server.on('DELETE', '/me', () => [202, { message: '账户已注销', bindings_ended: 2 }])
    await mp.open('pages/me/index')
    fake.storage.set('qq.session', { access_token: 'at-1', refresh_token: 'rt-1', expires_at: Date.now() + 60000 })
    await mp.tap('#delete')
    expect(fake.modals[0].content).toContain('此操作不能撤销')
    expect(server.called('DELETE', '/me')).toHaveLength(1)
    expect(mp.text()).toContain('✓ 账户已注销')
    expect(mp.text()).toContain('bindings_ended:2')
    expect(fake.storage.has('qq.session')).toBe(false)
  })

  test('a server without export or deletion says where to go instead', async () => {
    const { mp } = setup()
    await mp.open('pages/me/index')
    await mp.tap('#export')
    expect(mp.text()).toContain('没有成功:当前服务器还不支持导出个人数据')
    expect(mp.text()).toContain('12393')
  })

  test('logout', async () => {
    const { server, fake, mp } = setup()
    server.on('POST', '/auth/logout', () => null)
    fake.storage.set('qq.session', { access_token: 'at-9', refresh_token: 'rt-9', expires_at: Date.now() + 60000 })
    await mp.open('pages/me/index')
    await mp.tap('#logout')
    expect(server.last('POST', '/auth/logout').header.Authorization).toBe('Bearer at-9')
    expect(mp.text()).toContain('已退出')
  })
})

describe('关怀模式', () => {
  test('WeChat’s larger font setting scales every page’s text', async () => {
    const { fake, mp } = setup()
    fake.fontScale = 1.4 // 23.8px, the 「关怀模式」 size
    await mp.open('pages/index/index')
    expect(mp.data.pageStyle).toBe('--fs: 1.40;')
    fake.fontScale = 0.94 // smaller than standard: never shrink
    await mp.open('pages/notices/index')
    expect(mp.data.pageStyle).toBe('')
  })
})
