// 我的家人, 家人详情, 医保码, 就医记录, 谁绑定了我.

const { installWx } = require('../support/wx')
const { baseServer } = require('../support/fake-server')
const { MiniProgram } = require('../support/pages')
const { readQr } = require('../support/qr-read')

const MEMBER = {
  id: 'b1',
  state: 'active',
  relationship: 'parent',
  relationship_label: '父母',
  member: { name: '李*英', id_number: '4201**********2242' },
  insurance: { insurance_type: 'employee', region_code: '420100', status: 'active', voucher_activated: true },
  bound_at: '2026-12-01T09:00:00+08:00',
}
const SUMMARY = {
  year: 2026,
  balance: 115000,
  count: 2,
  medfee_sumamt: 45000,
  hifp_pay: 30000,
  psn_part_amt: 15000,
  acct_pay: 10000,
  acct_mulaid_pay: 3000,
  psn_cash_pay: 2000,
  member: MEMBER.member,
  insurance: MEMBER.insurance,
}

function setup() {
  const server = baseServer()
  server.on('GET', '/family/members', () => ({ items: [MEMBER] }))
  server.on('GET', '/family/members/:id/summary', () => SUMMARY)
  const fake = installWx({ transport: server })
  return { server, fake, mp: new MiniProgram(fake) }
}

describe('我的家人 and 家人详情', () => {
  test('the list shows each member masked, with the 医保码 and details a tap away', async () => {
    const { mp } = setup()
    await mp.open('pages/family/index')
    expect(mp.text()).toContain('李*英(父母)')
    expect(mp.text()).toContain('4201**********2242')
    await mp.tap('.details')
    expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/family/member/index?id=b1' }])
  })

  test('a suspended member is marked in words', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/members', () => ({ items: [Object.assign({}, MEMBER, { insurance: Object.assign({}, MEMBER.insurance, { status: 'suspended' }) })] }))
    await mp.open('pages/family/index')
    expect(mp.text()).toContain('! 参保状态异常(暂停)')
  })

  test('details: status, balance, the year; unbinding asks first and can be called off', async () => {
    const { server, fake, mp } = setup()
    server.on('DELETE', '/family/members/:id', () => null)
    await mp.open('pages/family/member/index?id=b1')
    const t = mp.text()
    expect(t).toContain('✓ 参保状态:正常参保')
    expect(t).toContain('个人账户余额:1150.00 元')
    expect(t).toContain('2026 年就医 2 次,医疗费共 450.00 元')
    fake.modalAnswers.push(false)
    await mp.tap('#unbind')
    expect(server.called('DELETE', '/family/members/b1')).toHaveLength(0)
    await mp.tap('#unbind')
    expect(fake.modals[1].content).toContain('李*英会收到通知')
    expect(server.called('DELETE', '/family/members/b1')).toHaveLength(1)
    expect(mp.text()).toContain('已不在您的亲情账户中')
  })
})

describe('医保码', () => {
  afterEach(() => jest.useRealTimers())

  test('drawn from qr_token, screen bright and kept on; renewed 10 s before it expires; restored on leaving', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] })
    const { server, fake, mp } = setup()
    let n = 0
    server.on('GET', '/family/members/:id/voucher', () => {
      n += 1
      return { qr_token: 'v1.token-' + n, expires_at: '2026-12-03T00:33:16+08:00', ttl_seconds: 60 }
    })
    await mp.open('pages/family/voucher/index?id=b1')
    expect(readQr(fake.canvases['#qr'])).toBe('v1.token-1')
    expect(fake.brightnessCalls).toEqual([1])
    expect(fake.keepScreenOn).toBe(true)
    expect(mp.text()).toContain('李*英的医保码')
    expect(mp.text()).toContain('有效到 00:33:16')

    jest.advanceTimersByTime(49000)
    await fake.settle()
    expect(n).toBe(1)
    jest.advanceTimersByTime(1000) // 50 s: 10 s before the 60 s code expires
    await fake.settle()
    expect(n).toBe(2)
    expect(readQr(fake.canvases['#qr'])).toBe('v1.token-2')

    mp.page.instance.onHide()
    expect(fake.brightnessCalls).toEqual([1, 0.4])
    expect(fake.keepScreenOn).toBe(false)
    jest.advanceTimersByTime(120000) // hidden: no more codes fetched
    await fake.settle()
    expect(n).toBe(2)
  })

  test('a code that cannot be had shows why (e.g. the binding ended)', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/members/:id/voucher', () => server.error(404, 'NOT_FOUND', '绑定关系不存在'))
    await mp.open('pages/family/voucher/index?id=b1')
    expect(mp.text()).toContain('没有成功:绑定关系不存在')
    expect(mp.text()).toContain('怎么办:')
  })

  test('the 刷新 button fetches a new code (each works once)', async () => {
    const { server, fake, mp } = setup()
    let n = 0
    server.on('GET', '/family/members/:id/voucher', () => ({ qr_token: 'v1.t' + ++n, expires_at: '2026-12-03T00:33:16+08:00', ttl_seconds: 60 }))
    await mp.open('pages/family/voucher/index?id=b1')
    await mp.tap('#refresh')
    expect(readQr(fake.canvases['#qr'])).toBe('v1.t2')
    mp.page.instance.onUnload()
  })
})

describe('就医记录', () => {
  const S = (id, month, fee, state) => ({
    setl_id: id,
    institution: '演示人民医院',
    med_type: '11',
    setl_time: '2026-' + month + '-02T10:30:00+08:00',
    medfee_sumamt: fee,
    hifp_pay: fee / 2,
    fund_pay_sumamt: fee / 2,
    psn_part_amt: fee / 2,
    acct_pay: fee / 2,
    acct_mulaid_pay: 0,
    psn_cash_pay: 0,
    state: state || 'settled',
  })

  test('the year’s split and a month-by-month chart with the amounts written out', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/members/:id/settlements', () => ({ items: [S('s2', '11', 30000), S('s1', '03', 15000), S('s0', '03', 999, 'reversed')], total: 3 }))
    await mp.open('pages/family/settlements/index?id=b1')
    expect(server.last('GET', '/family/members/b1/settlements').query).toEqual({ year: String(mp.data.year) })
    const t = mp.text()
    expect(t).toContain('医保统筹支付:300.00 元')
    expect(t).toContain('家庭共济支付:30.00 元')
    expect(t).toContain('3月:150.00 元')
    expect(t).toContain('11月:300.00 元')
    expect(t).toContain('↺ 这笔结算已撤销')
    expect(mp.data.months.map((m) => m.width)).toEqual([50, 100])
  })

  test('another year, and more pages through next_cursor', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/members/:id/settlements', (req) =>
      req.query.cursor ? { items: [S('s9', '01', 100)], total: 2 } : { items: [S('s8', '02', 200)], total: 2, next_cursor: 'c2' },
    )
    await mp.open('pages/family/settlements/index?id=b1&year=2026')
    await mp.tap('#more')
    expect(server.last('GET', '/family/members/b1/settlements').query).toEqual({ year: '2026', cursor: 'c2', limit: '50' })
    expect(mp.data.items.map((i) => i.id)).toEqual(['s8', 's9'])
    await mp.tap('#prev-year')
    expect(server.last('GET', '/family/members/b1/settlements').query).toEqual({ year: '2025' })
  })
})

describe('谁绑定了我', () => {
  test('the member sees who bound them, in their own words, and can end it', async () => {
    const { server, fake, mp } = setup()
    let items = [{ id: 'b7', relationship: 'parent', binder: { name: '张*' }, bound_at: '2026-12-01T09:00:00+08:00' }]
    server.on('GET', '/family/binders', () => ({ items }))
    server.on('DELETE', '/family/binders/:id', () => {
      items = []
      return null
    })
    await mp.open('pages/binders/index')
    expect(mp.text()).toContain('张*')
    expect(mp.text()).toContain('您是 TA 的父母 · 2026年12月1日 绑定')
    await mp.tap('.end')
    expect(fake.modals[0].content).toContain('张*将不能再出示您的医保码')
    expect(server.called('DELETE', '/family/binders/b7')).toHaveLength(1)
    expect(mp.text()).toContain('目前没有人绑定您')
  })
})
