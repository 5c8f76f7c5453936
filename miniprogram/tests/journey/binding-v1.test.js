// The v1 journey that works against today's server, through the pages:
// a binder verifies (face), binds a parent whose 医保电子凭证 is activated, shows the 医保码,
// a hospital scans it and settles (signed 2207), the binder sees the settlement, the yearly
// summary and its notice; the binder authorizes 共济; the parent sees who bound them; the
// binder logs in again and unbinds. (One wx per test file: a test that switches user
// starts the mini-program anew.)

const { start, realname, prepareBinding, institution, serves, state } = require('../support/journey')
const { readQr } = require('../support/qr-read')
const config = require('../../app/config')

const ZHANG_WEI = { name: '张伟', id: '420102199003071232' } // binder (config/demo_registry.csv)
const LI_XIUYING = { name: '李秀英', id: '420102195806122242' } // parent, voucher activated

let shared = {}

test('a binder verifies with the face check and binds a parent (voucher activated)', async () => {
  const { fake, mp } = start('zhangwei')
  await realname(mp, fake, ZHANG_WEI)
  // 人脸核身 ran once for the binder: with a session's userIdKey where the server opens one
  expect(fake.faceCalls).toHaveLength(1)
  if (serves('POST', '/api/v1/face/sessions')) expect(fake.faceCalls[0].userIdKey).toBeTruthy()

  const appId = await prepareBinding(mp, fake, LI_XIUYING)
  expect(mp.text()).toContain('已签承诺书,待提交')
  await mp.tap('#submit-face')
  expect(mp.text()).toContain('绑定成功')
  expect(mp.data.view.bindingId).toBeTruthy()
  shared = { fake, mp, appId, bindingId: mp.data.view.bindingId }

  // subscribe after the user's tap, reported to the server
  await mp.tap('#subscribe')
  expect(fake.subscribeCalls).toEqual([[config.subscribeTemplates.family_settlement, config.subscribeTemplates.reversal]])
  expect(mp.text()).toContain('已订阅通知')

  // the application list shows it done
  await mp.open('pages/applications/index')
  expect(mp.text()).toContain('李*英(父母)')
  expect(mp.text()).toContain('绑定成功')
})

test('the 医保码 is drawn from qr_token, bright, and a hospital settles with it', async () => {
  const { fake, mp, bindingId } = shared
  await mp.open('pages/family/index')
  expect(mp.text()).toContain('李*英(父母)')
  await mp.tap('.show-qr')
  expect(await mp.follow()).toBe('pages/family/voucher/index')
  expect(fake.brightnessCalls).toContain(1)
  expect(fake.keepScreenOn).toBe(true)
  const token = readQr(fake.canvases['#qr'])
  expect(token).toBe(mp.data.voucher.qr_token)
  expect(mp.text()).toContain('李*英的医保码')

  // the hospital scans the code: verify (it is the member's, single use), then 2207
  const h = institution('H09001', '测试第一医院')
  const v = await h.post('/vouchers/verify', { qr_token: token })
  expect(v.statusCode).toBe(200)
  expect(v.data.name).toBe('李秀英')
  const again = await h.post('/vouchers/verify', { qr_token: token })
  expect(again.statusCode).toBeGreaterThanOrEqual(400)
  const setl = await h.post('/settlements', {
    setl_id: 'MP-JOURNEY-1',
    med_type: '11',
    psn_no: v.data.psn_no,
    setl_time: new Date(Date.now()).toISOString().replace(/\.\d+Z$/, 'Z'),
    medfee_sumamt: '150.00',
    hifp_pay: '100.00',
    psn_part_amt: '50.00',
  })
  expect(setl.statusCode).toBe(201)

  // 刷新 fetches a new code; leaving the page restores the brightness
  await mp.tap('#refresh')
  expect(readQr(fake.canvases['#qr'])).not.toBe(token)
  mp.page.instance.onUnload()
  expect(fake.brightnessCalls[fake.brightnessCalls.length - 1]).toBe(0.4)
  expect(fake.keepScreenOn).toBe(false)
  shared.bindingId = bindingId
})

test('the binder sees the settlement, the yearly split and its notice', async () => {
  const { mp, bindingId } = shared
  await mp.open('pages/family/member/index?id=' + bindingId)
  expect(mp.text()).toContain('就医 1 次,医疗费共 150.00 元')
  await mp.tap('#settlements')
  expect(await mp.follow()).toBe('pages/family/settlements/index')
  const text = mp.text()
  expect(text).toContain('测试第一医院')
  expect(text).toContain('医疗费:150.00 元')
  expect(text).toContain('医保统筹支付:100.00 元')
  expect(text).toContain('个人账户支付:50.00 元')
  expect(text).toContain('结算记录(1 笔)')
  expect(mp.data.months).toHaveLength(1)

  // the notice, as opened from a push message (pages/notices/index?id=…)
  await mp.open('pages/notices/index')
  const n = mp.data.items.find((i) => i.title === '家人就医结算通知')
  expect(n).toBeTruthy()
  expect(['等待发送', '已发送', '已送达']).toContain(n.stateText)
  await mp.open('pages/notices/index?id=' + n.id)
  expect(mp.data.items[0].id).toBe(n.id)
  expect(mp.data.items[0].open).toBe(true)
  expect(mp.text()).toContain('家人:李*英')
  expect(mp.text()).toContain('机构:测试第一医院')
})

test('家庭共济: the binder reads the 告知书 to its end and authorizes the parent', async () => {
  const { mp } = shared
  await mp.open('pages/mutual-aid/index')
  await mp.tap('#authorize')
  expect(await mp.follow()).toBe('pages/mutual-aid/authorize/index')
  await mp.fire('#notice-text', 'scrolltolower')
  await mp.fire('#agree', 'change', { value: ['agree'] })
  await mp.pick('#relationship', 0)
  await mp.type('#name', LI_XIUYING.name)
  await mp.type('#id-number', LI_XIUYING.id)
  await mp.tap('#submit')
  expect(mp.text()).toContain('已授权 李*英 使用您的个人账户余额')
  await mp.tap('#back')
  await mp.follow()
  expect(mp.text()).toContain('李*英(父母)')
  expect(mp.text()).toContain('生效中')
})

test('the parent, once verified in the mini-program, sees who bound them', async () => {
  const { fake, mp } = start('lixiuying')
  await realname(mp, fake, LI_XIUYING)
  await mp.tap('#menu-3')
  expect(await mp.follow()).toBe('pages/binders/index')
  expect(mp.text()).toContain('张*')
  expect(mp.text()).toContain('您是 TA 的父母')
})

test('unbinding ends the binding (DELETE /family/members/{id}); a new login finds the same account', async () => {
  const { fake, mp } = start('zhangwei')
  const { bindingId } = shared
  await mp.open('pages/family/member/index?id=' + bindingId)
  await mp.tap('#unbind')
  expect(fake.modals[fake.modals.length - 1].title).toBe('解除绑定')
  expect(mp.text()).toContain('已不在您的亲情账户中')
  await mp.open('pages/family/index')
  expect(mp.text()).toContain('还没有绑定家人')
})

test('the journey ran against the server global-setup started', () => {
  expect(config.baseUrl).toBe(state.baseUrl)
})
