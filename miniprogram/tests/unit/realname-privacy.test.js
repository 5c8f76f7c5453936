// 实名认证 and 隐私告知 pages.

const { installWx } = require('../support/wx')
const { baseServer, PRIVACY_NOTICE } = require('../support/fake-server')
const { MiniProgram } = require('../support/pages')

function setup(opts) {
  const server = baseServer(opts)
  const fake = installWx({ transport: server })
  return { server, fake, mp: new MiniProgram(fake) }
}

async function fill(mp, name, id) {
  await mp.type('#name', name)
  await mp.type('#id-number', id)
}

describe('实名认证', () => {
  test('the ID is checked as it is typed', async () => {
    const { mp } = setup({ verified: false })
    await mp.open('pages/realname/index')
    await mp.type('#id-number', '42010219900307')
    expect(mp.text()).toContain('还差 4 位')
    await mp.type('#id-number', '420102199003071233')
    expect(mp.text()).toContain('✕ 号码有误(最后一位校验位不符),请逐位核对')
    await mp.type('#id-number', '420102199003071232')
    expect(mp.text()).toContain('✓ 号码格式正确')
  })

  test('an incomplete form says what is missing before asking the server', async () => {
    const { server, mp } = setup({ verified: false })
    await mp.open('pages/realname/index')
    await mp.type('#id-number', '4201021990')
    await mp.tap('#start')
    expect(mp.text()).toContain('没有成功:请先填写完整的姓名和证件号码')
    expect(mp.text()).toContain('怎么办:还差 8 位')
    expect(server.called('POST', '/face/sessions')).toHaveLength(0)
  })

  test('face session → WeChat 人脸核身 with its userIdKey → /me/realname with the verify result', async () => {
    const { server, fake, mp } = setup({ verified: false })
    server.on('POST', '/face/sessions', () => [201, { user_id_key: 'KEY-1', expires_in: 600 }])
    server.on('POST', '/me/realname', (req) => ({ id: 1, realname_verified: true, name: '张*', got: req.body }))
    await mp.open('pages/realname/index')
    await fill(mp, '张伟', '420102199003071232')
    await mp.tap('#start')
    expect(server.last('POST', '/face/sessions').body).toEqual({ purpose: 'realname', name: '张伟', id_type: 'resident_id', id_number: '420102199003071232' })
    expect(fake.faceCalls[0].userIdKey).toBe('KEY-1')
    expect(server.last('POST', '/me/realname').body).toEqual({ name: '张伟', id_type: 'resident_id', id_number: '420102199003071232', face_token: 'ok-1' })
    expect(mp.text()).toContain('✓ 实名认证成功:张*')
    await mp.tap('#done')
    expect(mp.pendingNav()).toEqual([{ type: 'navigateBack', delta: 1 }])
  })

  test('a server without face sessions (v1) gets the face result straight away', async () => {
    const { server, fake, mp } = setup({ verified: false })
    server.on('POST', '/me/realname', () => ({ id: 1, realname_verified: true, name: '张*' }))
    await mp.open('pages/realname/index')
    await fill(mp, '张伟', '420102199003071232')
    await mp.tap('#start')
    expect(fake.faceCalls[0].userIdKey).toBeUndefined()
    expect(fake.faceCalls[0].name).toBe('张伟')
    expect(mp.text()).toContain('实名认证成功')
  })

  test('a refused face check shows the server’s message and fix; cancelling says how to go on', async () => {
    const { server, fake, mp } = setup({ verified: false })
    server.on('POST', '/face/sessions', () => [201, { user_id_key: 'K', expires_in: 600 }])
    server.on('POST', '/me/realname', () =>
      server.error(422, 'FACE_CHECK_FAILED', '人脸核验未通过,请本人正对手机摄像头重新完成人脸识别。', {
        fields: { face_token: 'FACE_CHECK_FAILED' },
        fix: '请在光线充足处摘下帽子和眼镜,正对手机摄像头完成人脸识别。',
      }),
    )
    await mp.open('pages/realname/index')
    await fill(mp, '张伟', '420102199003071232')
    await mp.tap('#start')
    expect(mp.text()).toContain('没有成功:人脸核验未通过')
    expect(mp.text()).toContain('怎么办:请在光线充足处摘下帽子和眼镜')
    expect(mp.text()).toContain('人脸核验:未通过')
    fake.faceResults.push('cancel')
    await mp.tap('#start')
    expect(mp.text()).toContain('没有成功:人脸核验已取消')
    expect(mp.text()).toContain('户口本审核')
  })

  test('without consent to face recognition the error leads to the privacy page', async () => {
    const { server, mp } = setup({ verified: false })
    server.on('POST', '/face/sessions', () => server.error(403, 'CONSENT_REQUIRED', '使用人脸识别需要您单独同意', { purpose: 'face' }))
    await mp.open('pages/realname/index')
    await fill(mp, '张伟', '420102199003071232')
    await mp.tap('#start')
    expect(mp.text()).toContain('使用人脸识别需要您单独同意')
    await mp.tap(['#error', '.error-action'])
    expect(mp.pendingNav()).toEqual([{ type: 'navigateTo', url: '/pages/privacy/index' }])
  })
})

describe('隐私告知', () => {
  test('first use: full text, nothing preselected, consent to the chosen purposes, then back', async () => {
    const { server, fake, mp } = setup({ privacy: true })
    server.on('POST', '/privacy/consents', (req) => [201, { ok: true, got: req.body }])
    await mp.open('pages/privacy/index?first=1')
    expect(mp.text()).toContain(PRIVACY_NOTICE.text)
    expect(mp.data.purposes.map((p) => p.checked)).toEqual([false, false, false])
    await mp.fire('#purposes', 'change', { value: ['face', 'medical_records'] })
    await mp.tap('#agree')
    expect(server.last('POST', '/privacy/consents').body).toEqual({
      version: PRIVACY_NOTICE.version,
      sha256: PRIVACY_NOTICE.sha256,
      purposes: ['face', 'medical_records'],
    })
    expect(fake.storage.get('qq.privacy')).toEqual({ version: PRIVACY_NOTICE.version })
    expect(mp.pendingNav()).toEqual([{ type: 'navigateBack', delta: 1 }])
  })

  test('later: what is granted is shown and one purpose can be withdrawn', async () => {
    const { server, fake, mp } = setup({ privacy: true })
    let granted = ['face', 'id_documents']
    server.on('GET', '/privacy/consents', () => ({ items: granted.map((p) => ({ purpose: p, version: PRIVACY_NOTICE.version })) }))
    server.on('DELETE', '/privacy/consents/:purpose', (req) => {
      granted = granted.filter((g) => g !== req.params.purpose)
      return null
    })
    await mp.open('pages/privacy/index')
    expect(mp.data.purposes.filter((p) => p.granted).map((p) => p.id)).toEqual(['face', 'id_documents'])
    fake.modalAnswers.push(false)
    await mp.tap('.withdraw')
    expect(server.called('DELETE', '/privacy/consents/face')).toHaveLength(0)
    await mp.tap('.withdraw')
    expect(fake.modals[1].content).toContain('撤回「人脸识别」')
    expect(server.called('DELETE', '/privacy/consents/face')).toHaveLength(1)
    expect(mp.data.purposes.filter((p) => p.granted).map((p) => p.id)).toEqual(['id_documents'])
  })

  test('a server without a privacy notice says so', async () => {
    const { mp } = setup()
    await mp.open('pages/privacy/index')
    expect(mp.text()).toContain('当前服务器没有提供隐私告知书')
  })
})
