// The v1.1 journey (API.md "v1.1 additions"), through the pages against the real server.
// Each step is skipped, naming the endpoint or field it waits for (support/probes.js), until
// the server serves it: they turn on by themselves when it lands.

const fs = require('fs')
const { start, signIn, passPrivacy, realname, prepareBinding, when, HUKOU } = require('../support/journey')

const WANG_FANG = { name: '王芳', id: '420103199208152622' }
const ZHOU_MIN = { name: '周敏', id: '420102199511112061' }
const WU_TING = { name: '吴婷', id: '42010619850420222X' }
const LIU_GUILAN = { name: '刘桂兰', id: '420106194803030466' } // voucher NOT activated
const ZHANG_JIANGUO = { name: '张建国', id: '420102195601011311' }

when('privacy')('privacy first: a new user reads the notice and consents per purpose before anything else', async () => {
  const { mp } = start('privacyfirst')
  await mp.open('pages/index/index')
  const nav = mp.pendingNav()
  expect(nav[nav.length - 1].url).toBe('/pages/privacy/index?first=1')
  await mp.follow()
  expect(mp.data.notice.text.length).toBeGreaterThan(0)
  expect(mp.data.purposes.length).toBeGreaterThan(0)
  expect(mp.data.purposes.every((p) => !p.checked)).toBe(true) // nothing preselected
  const chosen = mp.data.purposes.map((p) => p.id)
  await mp.fire('#purposes', 'change', { value: chosen })
  await mp.tap('#agree')
  expect(mp.data.error).toBeNull()
  expect(await mp.follow()).toBe('pages/index/index')
  expect(mp.pendingNav()).toEqual([]) // accepted: not asked again
  // the privacy page now shows what was granted, and one can be withdrawn
  await mp.open('pages/privacy/index')
  expect(mp.data.purposes.filter((p) => p.granted).map((p) => p.id).sort()).toEqual(chosen.slice().sort())
  await mp.tap('.withdraw')
  expect(mp.data.error).toBeNull()
  expect(mp.data.purposes.filter((p) => p.granted)).toHaveLength(chosen.length - 1)
})

when('faceSessions')('the real-name face check opens a face session and passes its userIdKey to WeChat', async () => {
  const { fake, mp } = start('wangfang')
  await realname(mp, fake, WANG_FANG)
  expect(fake.faceCalls).toHaveLength(1)
  expect(fake.faceCalls[0].userIdKey).toBeTruthy()
})

when('activation')('a parent without an activated 医保电子凭证 is bound and activated (代激活)', async () => {
  const { fake, mp } = await signIn('wangfang', WANG_FANG)
  await prepareBinding(mp, fake, LIU_GUILAN)
  await mp.tap('#submit-face')
  expect(mp.text()).toContain('绑定成功')
  expect(mp.text()).toContain('已同时为家人激活医保电子凭证')
  await mp.open('pages/family/member/index?id=' + mp.data.view.bindingId)
  expect(mp.text()).toContain('医保电子凭证:已激活')
})

when('cancelApplication')('a failed member face check waits in needs_action; one tap retries and binds', async () => {
  const { fake, mp } = await signIn('zhoumin', ZHOU_MIN)
  await prepareBinding(mp, fake, ZHANG_JIANGUO)
  fake.faceResults.push('bad') // the member's face check fails
  await mp.tap('#submit-face')
  expect(mp.data.view.state).toBe('needs_action')
  expect(mp.text()).toContain('需要您处理')
  expect(mp.data.view.failure.code).toBe('FACE_CHECK_FAILED')
  expect(mp.text()).toContain('怎么办:')
  await mp.tap('#retry-face') // passes this time
  expect(mp.data.view.state).toBe('active')
  expect(mp.text()).toContain('绑定成功')
  // the application kept its materials: nothing was uploaded twice
  expect(mp.data.app.materials).toHaveLength(1)
})

when('removeMaterial')('a material uploaded by mistake is removed before submitting', async () => {
  const { fake, mp } = await signIn('wuting', WU_TING)
  await mp.tap('#menu-0')
  await mp.follow()
  await mp.pick('#relationship', 0)
  await mp.type('#name', ZHANG_JIANGUO.name)
  await mp.type('#id-number', ZHANG_JIANGUO.id)
  await mp.tap('#precheck')
  await mp.tap('#create')
  expect(await mp.follow()).toBe('pages/bind/materials/index')
  const id = mp.stack[mp.stack.length - 1].query.id
  for (let i = 0; i < 2; i++) {
    fake.media.push({ tempFilePath: HUKOU, size: fs.statSync(HUKOU).size })
    await mp.tap('#choose-photo')
  }
  expect(mp.data.materials).toHaveLength(2)
  await mp.tap('.remove')
  expect(mp.data.error).toBeNull()
  expect(mp.data.materials).toHaveLength(1)
  await mp.open('pages/bind/materials/index?id=' + id)
  expect(mp.data.materials).toHaveLength(1)
})

when('documentsWay')('a member who cannot do the face check goes the documents way to a reviewer', async () => {
  const { fake, mp } = await signIn('wuting', WU_TING)
  const before = fake.faceCalls.length
  await prepareBinding(mp, fake, ZHANG_JIANGUO)
  await mp.tap('#submit-documents')
  expect(mp.data.view.state).toBe('pending_review')
  expect(mp.text()).toContain('等待人工审核')
  expect(fake.faceCalls).toHaveLength(before) // no face check for the member
})

when('export')('my data: export everything as a JSON file to send to a chat', async () => {
  const { fake, mp } = start('exporter')
  await mp.open('pages/index/index')
  await passPrivacy(mp, fake)
  await mp.open('pages/me/index')
  await mp.tap('#export')
  expect(mp.data.error).toBeNull()
  expect(mp.text()).toContain('已生成')
  await mp.tap('#share-file')
  expect(fake.shared).toHaveLength(1)
  expect(JSON.parse(fake.files.get(fake.shared[0].filePath))).toBeTruthy()
})

when('deleteAccount')('deleting the account says what happens and forgets the session', async () => {
  const { fake, mp } = start('leaver')
  await mp.open('pages/index/index')
  await passPrivacy(mp, fake)
  await mp.open('pages/me/index')
  await mp.tap('#delete')
  expect(fake.modals[fake.modals.length - 1].title).toBe('注销账户')
  expect(mp.data.error).toBeNull()
  expect(mp.data.deleted).toBeTruthy()
  expect(fake.storage.has('qq.session')).toBe(false)
})
