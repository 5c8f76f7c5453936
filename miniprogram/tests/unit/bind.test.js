// The binding steps: 添加家人 (precheck, application), 上传材料, 个人承诺书, 提交与结果.

const { installWx } = require('../support/wx')
const { baseServer } = require('../support/fake-server')
const { MiniProgram } = require('../support/pages')
const drafts = require('../../app/utils/drafts')

const APP = {
  id: 'a1',
  state: 'draft',
  relationship: 'parent',
  relationship_label: '父母',
  member: { name: '李*英', id_type: 'resident_id', id_number: '4201**********2242' },
  materials: [],
  commitment: null,
}

function setup(opts) {
  const server = baseServer(opts)
  const fake = installWx({ transport: server })
  return { server, fake, mp: new MiniProgram(fake) }
}

describe('添加家人', () => {
  async function fillMember(mp, id) {
    await mp.pick('#relationship', 0)
    await mp.type('#name', '李秀英')
    await mp.type('#id-number', id || '420102195806122242')
  }

  test('precheck blockers show their message, fix and where to fix it; next stays off', async () => {
    const { server, mp } = setup()
    server.on('POST', '/family/precheck', () => ({
      ok: false,
      blocking: [
        { code: 'MEMBER_NOT_ACTIVATED', message: '被绑定人尚未实名或医保电子凭证未激活。', fix: '请先帮家人激活医保电子凭证。' },
        { code: 'BINDER_NOT_VERIFIED', message: '您尚未完成实名认证。', fix: '请先完成本人实名认证。' },
      ],
      required_materials: [{ kinds: ['household_register'], label: '户口本' }],
      face_check_required: true,
      review_required: false,
    }))
    await mp.open('pages/bind/member/index')
    await fillMember(mp)
    await mp.tap('#precheck')
    expect(server.last('POST', '/family/precheck').body).toEqual({ name: '李秀英', id_type: 'resident_id', id_number: '420102195806122242', relationship: 'parent' })
    const t = mp.text()
    expect(t).toContain('✕ 暂时不能办理')
    expect(t).toContain('1. 被绑定人尚未实名或医保电子凭证未激活。')
    expect(t).toContain('怎么办:请先帮家人激活医保电子凭证。')
    expect(t).toContain('去实名认证')
    await mp.tap('#create')
    expect(server.called('POST', '/family/applications')).toHaveLength(0)
  })

  test('a passing precheck lists what is needed; the draft is created and its needs kept for the next steps', async () => {
    const { server, fake, mp } = setup()
    const required = [{ kinds: ['household_register', 'id_card_front+id_card_back'], label: '户口本,或身份证正反面' }]
    server.on('POST', '/family/precheck', () => ({ ok: true, blocking: [], required_materials: required, face_check_required: true, review_required: false }))
    server.on('POST', '/family/applications', (req) => [201, Object.assign({}, APP, { got: req.body })])
    await mp.open('pages/bind/member/index')
    await fillMember(mp)
    await mp.type('#phone', '13800138000')
    await mp.tap('#precheck')
    expect(mp.text()).toContain('✓ 可以办理')
    expect(mp.text()).toContain('户口本,或身份证正反面(任选其一)')
    expect(mp.text()).toContain('家人本人在场刷脸')
    await mp.tap('#create')
    expect(server.last('POST', '/family/applications').body).toEqual({
      name: '李秀英',
      id_type: 'resident_id',
      id_number: '420102195806122242',
      relationship: 'parent',
      phone: '13800138000',
      reason: '为了方便家人代办医保业务',
    })
    expect(drafts.get('a1')).toEqual({ required, face: true, review: false })
    expect(mp.pendingNav()).toEqual([{ type: 'redirectTo', url: '/pages/bind/materials/index?id=a1' }])
    expect(fake.storage.get('qq.drafts').a1.face).toBe(true)
  })

  test('changing a field after the precheck asks for a new one', async () => {
    const { server, mp } = setup()
    server.on('POST', '/family/precheck', () => ({ ok: true, blocking: [], required_materials: [], face_check_required: false, review_required: false }))
    await mp.open('pages/bind/member/index')
    await fillMember(mp)
    await mp.tap('#precheck')
    expect(mp.data.result).not.toBeNull()
    await mp.type('#name', '李秀')
    expect(mp.data.result).toBeNull()
  })

  test('a child under 16 is told about the documents it needs', async () => {
    const { mp } = setup()
    await mp.open('pages/bind/member/index')
    await mp.type('#id-number', '420102201805201131')
    expect(mp.text()).toContain('未满 16 周岁:需上传出生医学证明或户口本')
  })

  test('no relationship chosen: says so, asks nothing', async () => {
    const { server, mp } = setup()
    await mp.open('pages/bind/member/index')
    await mp.type('#name', '李秀英')
    await mp.tap('#precheck')
    expect(mp.text()).toContain('请先选择家人与您的关系')
    expect(server.called('POST', '/family/precheck')).toHaveLength(0)
  })
})

describe('上传材料', () => {
  function withApp(server, materials) {
    let list = materials || []
    server.on('GET', '/family/applications/:id', () => Object.assign({}, APP, { materials: list }))
    server.on('POST', '/family/applications/:id/materials', (req) => {
      const m = { id: 'm' + (list.length + 1), kind: req.upload.formData.kind, label: '户口本', size: 2048, sha256: 'x' }
      list = list.concat([m])
      return [201, m]
    })
    server.on('DELETE', '/family/applications/:id/materials/:mid', (req) => {
      list = list.filter((m) => m.id !== req.params.mid)
      return null
    })
  }

  test('the requirements from the precheck, upload with progress, then ✓', async () => {
    const { server, fake, mp } = setup()
    withApp(server)
    drafts.save('a1', { required: [{ kinds: ['household_register', 'id_card_front+id_card_back'], label: '户口本,或身份证正反面' }], face: true })
    await mp.open('pages/bind/materials/index?id=a1')
    expect(mp.text()).toContain('○ 户口本,或身份证正反面(未上传)')
    expect(mp.data.kinds[mp.data.kindIndex].value).toBe('household_register')
    const progress = []
    const setData = mp.page.instance.setData.bind(mp.page.instance)
    mp.page.instance.setData = (d, cb) => {
      if (d['uploading.progress'] !== undefined) progress.push(d['uploading.progress'])
      return setData(d, cb)
    }
    fake.media.push({ tempFilePath: 'wxfile://tmp/hukou.jpg', size: 4096 })
    await mp.tap('#choose-photo')
    expect(progress).toEqual([50, 100])
    const up = server.last('POST', '/family/applications/a1/materials').upload
    expect(up).toMatchObject({ filePath: 'wxfile://tmp/hukou.jpg', name: 'file', formData: { kind: 'household_register' } })
    expect(mp.text()).toContain('✓ 户口本,或身份证正反面(已上传)')
    expect(mp.text()).toContain('已上传(1 份)')
    expect(mp.data.uploading).toBeNull()
  })

  test('身份证 needs both sides before it counts', async () => {
    const { server, fake, mp } = setup()
    withApp(server)
    drafts.save('a2', { required: [{ kinds: ['household_register', 'id_card_front+id_card_back'], label: '户口本,或身份证正反面' }] })
    await mp.open('pages/bind/materials/index?id=a2')
    await mp.pick('#kind', mp.data.kinds.findIndex((k) => k.value === 'id_card_front'))
    fake.media.push({ tempFilePath: 'wxfile://tmp/front.jpg' })
    await mp.tap('#choose-photo')
    expect(mp.data.requirements[0].met).toBe(false)
    await mp.pick('#kind', mp.data.kinds.findIndex((k) => k.value === 'id_card_back'))
    fake.media.push({ tempFilePath: 'wxfile://tmp/back.jpg' })
    await mp.tap('#choose-photo')
    expect(mp.data.requirements[0].met).toBe(true)
  })

  test('a refused file shows why and what to do', async () => {
    const { server, mp } = setup()
    withApp(server)
    server.on('POST', '/family/applications/:id/materials', () => server.error(413, 'PAYLOAD_TOO_LARGE', '文件过大(上限 8 MB)'))
    await mp.open('pages/bind/materials/index?id=a1')
    await mp.tap('#choose-photo')
    expect(mp.text()).toContain('没有成功:文件过大(上限 8 MB)')
    expect(mp.text()).toContain('怎么办:文件太大了,请重新拍摄或选择小一些的图片后再上传。')
    expect(mp.data.uploading).toBeNull()
  })

  test('a material is removed after confirming (DELETE …/materials/{id})', async () => {
    const { server, fake, mp } = setup()
    withApp(server, [{ id: 'm1', kind: 'household_register', label: '户口本', size: 1024 }, { id: 'm2', kind: 'id_card_front', label: '身份证人像面', size: 1024 }])
    await mp.open('pages/bind/materials/index?id=a1')
    expect(mp.text()).toContain('已上传(2 份)')
    await mp.tap('.remove')
    expect(fake.modals[0].title).toBe('删除这份材料')
    expect(server.called('DELETE', '/family/applications/a1/materials/m1')).toHaveLength(1)
    expect(mp.text()).toContain('已上传(1 份)')
  })

  test('a server that cannot remove materials yet says what to do instead', async () => {
    const { server, mp } = setup()
    server.on('GET', '/family/applications/:id', () => Object.assign({}, APP, { materials: [{ id: 'm1', kind: 'household_register', size: 1 }] }))
    await mp.open('pages/bind/materials/index?id=a1')
    await mp.tap('.remove')
    expect(mp.text()).toContain('当前服务器还不能删除已上传的材料')
    expect(mp.text()).toContain('已上传(1 份)')
  })

  test('a cancelled picker is not an error', async () => {
    const { server, fake, mp } = setup()
    withApp(server)
    await mp.open('pages/bind/materials/index?id=a1')
    global.wx.chooseMedia = (o) => o.fail({ errMsg: 'chooseMedia:fail cancel' })
    await mp.tap('#choose-photo')
    expect(mp.data.error).toBeNull()
    expect(server.called('POST', '/family/applications/a1/materials')).toHaveLength(0)
    expect(fake.requests.filter((r) => r.upload)).toHaveLength(0)
  })
})

describe('个人承诺书', () => {
  const C = { version: '2025.1', title: '医保亲情账户个人承诺书', text: '本人自愿……', sha256: 'b'.repeat(64) }

  test('signing waits for the end of the text; a handwritten signature goes along as base64', async () => {
    const { server, fake, mp } = setup()
    server.on('GET', '/commitments/current', () => C)
    server.on('POST', '/family/applications/:id/commitment', (req) => [201, { version: C.version, got: req.body }])
    await mp.open('pages/bind/commitment/index?id=a1')
    expect(mp.text()).toContain('医保亲情账户个人承诺书')
    expect(mp.text()).toContain('请向上滑动,读到最后')
    await mp.tap('#sign')
    expect(server.called('POST', '/family/applications/a1/commitment')).toHaveLength(0)
    await mp.fire('#commitment-text', 'scrolltolower')
    expect(mp.text()).toContain('✓ 已阅读到最后')
    mp.find('#sign-pad').dispatchEvent('touchstart', { touches: [{ x: 5, y: 5 }] })
    mp.find('#sign-pad').dispatchEvent('touchmove', { touches: [{ x: 50, y: 30 }] })
    await fake.settle()
    expect(fake.canvases['#sign-pad'].ctx.ops.some((o) => o[0] === 'stroke')).toBe(true)
    await mp.tap('#sign')
    const body = server.last('POST', '/family/applications/a1/commitment').body
    expect(body.version).toBe('2025.1')
    expect(body.sha256).toBe(C.sha256)
    expect(Buffer.from(body.signature_image, 'base64').slice(1, 4).toString()).toBe('PNG')
    expect(mp.pendingNav()).toEqual([{ type: 'redirectTo', url: '/pages/bind/submit/index?id=a1' }])
  })

  test('no signature drawn: none sent; clearing one removes it', async () => {
    const { server, fake, mp } = setup()
    server.on('GET', '/commitments/current', () => C)
    server.on('POST', '/family/applications/:id/commitment', () => [201, {}])
    fake.scrollInfo = { height: 400, scrollHeight: 300 } // a short text has no end to scroll to
    await mp.open('pages/bind/commitment/index?id=a1')
    expect(mp.data.readToEnd).toBe(true)
    mp.find('#sign-pad').dispatchEvent('touchstart', { touches: [{ x: 5, y: 5 }] })
    mp.find('#sign-pad').dispatchEvent('touchmove', { touches: [{ x: 50, y: 30 }] })
    await fake.settle()
    await mp.tap('#clear-signature')
    await mp.tap('#sign')
    expect(server.last('POST', '/family/applications/a1/commitment').body).toEqual({ version: C.version, sha256: C.sha256 })
  })
})

describe('提交与结果', () => {
  function withApp(server, state, extra) {
    let app = Object.assign({}, APP, { state }, extra || {})
    server.on('GET', '/family/applications/:id', () => app)
    server.set = (patch) => (app = Object.assign({}, app, patch))
    return app
  }

  test('the member’s face check (session for the application) goes with the submit; active shows the 医保码 button', async () => {
    const { server, fake, mp } = setup()
    withApp(server, 'commitment_signed')
    server.on('POST', '/face/sessions', (req) => [201, { user_id_key: 'MEMBER-KEY', expires_in: 600, got: req.body }])
    server.on('POST', '/family/applications/:id/submit', () => Object.assign({}, APP, { state: 'active', binding_id: 'b9', member_activated: true }))
    await mp.open('pages/bind/submit/index?id=a1')
    expect(mp.text()).toContain('○ 已签承诺书,待提交')
    await mp.tap('#submit-face')
    expect(server.last('POST', '/face/sessions').body).toEqual({ purpose: 'member', application_id: 'a1' })
    expect(fake.faceCalls[0].userIdKey).toBe('MEMBER-KEY')
    expect(server.last('POST', '/family/applications/a1/submit').body).toEqual({ member_face_token: 'ok-1' })
    expect(mp.text()).toContain('✓ 绑定成功')
    expect(mp.text()).toContain('已同时为家人激活医保电子凭证')
    await mp.tap('#show-qr')
    expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/family/voucher/index?id=b9' }])
  })

  test('a fixable refusal (409) waits in needs_action with the fix; one tap retries the face check and binds', async () => {
    const { server, fake, mp } = setup()
    withApp(server, 'commitment_signed')
    let tries = 0
    server.on('POST', '/family/applications/:id/submit', () => {
      tries += 1
      if (tries === 1) {
        server.set({ state: 'needs_action', failure: { code: 'FACE_CHECK_FAILED', message: '被绑定人的人脸核验未完成或未通过。', fix: '请让家人本人在场……' } })
        return server.error(409, 'FACE_CHECK_FAILED', '被绑定人的人脸核验未完成或未通过。', { fix: '请让家人本人在场……', application_id: 'a1', state: 'needs_action' })
      }
      return Object.assign({}, APP, { state: 'active', binding_id: 'b1' })
    })
    fake.faceResults.push('bad')
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#submit-face')
    expect(mp.data.error).toBeNull()
    const t = mp.text()
    expect(t).toContain('! 需要您处理')
    expect(t).toContain('原因:被绑定人的人脸核验未完成或未通过。')
    expect(t).toContain('怎么办:请让家人本人在场……')
    expect(mp.exists('#retry-face')).toBe(true)
    expect(mp.exists('#cancel')).toBe(true)
    await mp.tap('#retry-face')
    expect(server.last('POST', '/family/applications/a1/submit').body).toEqual({ member_face_token: 'ok-2' })
    expect(mp.text()).toContain('✓ 绑定成功')
  })

  test('a missing material: the fix is a tap to the materials page', async () => {
    const { mp, server } = setup()
    withApp(server, 'needs_action', { failure: { code: 'MATERIALS_MISSING', message: '缺少材料', fix: '请上传户口本' } })
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#fix-step')
    expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/bind/materials/index?id=a1' }])
    expect(mp.text()).toContain('已处理好,刷脸后重新提交')
  })

  test('an outdated commitment: the fix is signing the new text', async () => {
    const { mp, server } = setup()
    withApp(server, 'needs_action', { failure: { code: 'COMMITMENT_OUTDATED', message: '承诺书已更新', fix: '请重新阅读并签署' } })
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#fix-step')
    expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/bind/commitment/index?id=a1' }])
  })

  test('a final failure says so and offers no retry', async () => {
    const { mp, server } = setup()
    withApp(server, 'failed', { failure: { code: 'RELATIONSHIP_NOT_ALLOWED', message: '关系不在允许范围', fix: '亲情账户只能绑定配偶、父母、子女' } })
    await mp.open('pages/bind/submit/index?id=a1')
    expect(mp.text()).toContain('✕ 未成功')
    expect(mp.text()).toContain('这次申请已经结束')
    expect(mp.exists('#retry-face')).toBe(false)
    expect(mp.exists('#submit-face')).toBe(false)
  })

  test('the documents way goes to review; the review result can be subscribed to when a template is set', async () => {
    const { server, fake, mp } = setup()
    withApp(server, 'commitment_signed')
    server.on('POST', '/family/applications/:id/submit', () => Object.assign({}, APP, { state: 'pending_review' }))
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#submit-documents')
    expect(server.last('POST', '/family/applications/a1/submit').body).toEqual({ verification: 'documents' })
    expect(fake.faceCalls).toHaveLength(0)
    expect(mp.text()).toContain('… 等待人工审核')
    await mp.tap('#subscribe') // no binding_result template configured: WeChat is not asked
    expect(fake.subscribeCalls).toEqual([])
    expect(mp.text()).toContain('没有订阅')
  })

  test('a child (no face check): a plain submit', async () => {
    const { server, mp } = setup()
    withApp(server, 'commitment_signed')
    drafts.save('kid', { face: false })
    server.on('POST', '/family/applications/:id/submit', () => Object.assign({}, APP, { state: 'active', binding_id: 'b2' }))
    await mp.open('pages/bind/submit/index?id=kid')
    expect(mp.exists('#submit-face')).toBe(false)
    await mp.tap('#submit-plain')
    expect(server.last('POST', '/family/applications/kid/submit').body).toEqual({})
  })

  test('cancelling a draft asks first, deletes it and goes home', async () => {
    const { server, fake, mp } = setup()
    withApp(server, 'materials')
    server.on('DELETE', '/family/applications/:id', () => null)
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#cancel')
    expect(fake.modals[0].title).toBe('取消这次申请')
    expect(server.called('DELETE', '/family/applications/a1')).toHaveLength(1)
    expect(mp.pendingNav()).toEqual([{ type: 'reLaunch', url: '/pages/index/index' }])
  })

  test('subscribing after a binding asks WeChat for the settlement templates and reports the answer', async () => {
    const { server, fake, mp } = setup()
    withApp(server, 'active', { binding_id: 'b1' })
    server.on('POST', '/notices/subscriptions', (req) => ({ grants: {}, got: req.body }))
    fake.subscribeAnswer = 'accept'
    await mp.open('pages/bind/submit/index?id=a1')
    await mp.tap('#subscribe')
    expect(fake.subscribeCalls).toEqual([['DEMO_MP_FAMILY_SETTLEMENT', 'DEMO_MP_REVERSAL']])
    expect(server.last('POST', '/notices/subscriptions').body).toEqual({ results: { DEMO_MP_FAMILY_SETTLEMENT: 'accept', DEMO_MP_REVERSAL: 'accept' } })
    expect(mp.text()).toContain('已订阅通知')
  })
})

test('a reviewer’s correction request: upload again, then submit again', async () => {
  const server = baseServer()
  const fake = installWx({ transport: server })
  const mp = new MiniProgram(fake)
  server.on('GET', '/family/applications/:id', () =>
    Object.assign({}, APP, { state: 'correction_requested', failure: { code: 'REVIEW_CORRECTION', message: '户口本照片不清晰', fix: '请重新拍摄户口本' } }),
  )
  await mp.open('pages/bind/submit/index?id=a1')
  expect(mp.text()).toContain('! 审核要求补充材料')
  expect(mp.text()).toContain('原因:户口本照片不清晰')
  await mp.tap('#fix-step')
  expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/bind/materials/index?id=a1' }])
})
