// The pure helpers: ID checksum as typed, money and time formatting, the QR encoder (read
// back with a real decoder), error display.

const jsQR = require('jsqr')
const idcard = require('../../app/utils/idcard')
const format = require('../../app/utils/format')
const qrcode = require('../../app/utils/qrcode')
const errors = require('../../app/utils/errors')
const privacy = require('../../app/utils/privacy')

const NOW = Date.UTC(2026, 11, 2, 4, 0, 0) // 2026-12-02 12:00 in Shanghai

describe('居民身份证 checked as typed', () => {
  test('says how many digits are missing while typing', () => {
    expect(idcard.checkResidentId('4201021990', NOW)).toMatchObject({ state: 'typing', message: '还差 8 位' })
  })
  test('a wrong check character is caught digit by digit', () => {
    expect(idcard.checkResidentId('420102199003071233', NOW)).toMatchObject({ state: 'invalid' })
    expect(idcard.checkResidentId('420102199003071233', NOW).message).toContain('校验位')
  })
  test('a valid number tells the birth date and age', () => {
    const r = idcard.checkResidentId('420102195806122242', NOW)
    expect(r.state).toBe('ok')
    expect(r.age).toBe(68)
    expect(r.message).toContain('1958年6月12日')
  })
  test('a lower-case x and spaces are normalised', () => {
    expect(idcard.checkResidentId('42010619850420222x', NOW)).toMatchObject({ state: 'ok', value: '42010619850420222X' })
    expect(idcard.checkResidentId('4201 0619 8504 2022 2X', NOW).state).toBe('ok')
  })
  test('impossible and future birth dates are refused', () => {
    const feb30 = '42010219900230' + '123'
    expect(idcard.checkResidentId(feb30 + idcard.checkChar(feb30), NOW).message).toContain('出生日期')
    const future = '42010220270101' + '123'
    expect(idcard.checkResidentId(future + idcard.checkChar(future), NOW).state).toBe('invalid')
  })
  test('letters in the middle are refused at once', () => {
    expect(idcard.checkResidentId('4201A2', NOW).state).toBe('invalid')
  })
  test('Shanghai calendar: 23:30 UTC is already the next day', () => {
    expect(idcard.shanghaiToday(Date.UTC(2026, 11, 31, 23, 30))).toEqual([2027, 1, 1])
  })
})

describe('format', () => {
  test('fen to yuan without floating point', () => {
    expect(format.yuan(15000)).toBe('150.00 元')
    expect(format.yuan(5)).toBe('0.05 元')
    expect(format.yuan(-1999)).toBe('-19.99 元')
    expect(format.yuan(null)).toBe('—')
  })
  test('yuan typed by a user to fen, exactly', () => {
    expect(format.fenFromYuan('500')).toBe(50000)
    expect(format.fenFromYuan('0.1')).toBe(10)
    expect(format.fenFromYuan('19.99')).toBe(1999)
    expect(format.fenFromYuan('1.234')).toBeNull()
    expect(format.fenFromYuan('abc')).toBeNull()
  })
  test('times are read as the server wrote them (+08:00)', () => {
    expect(format.datetime('2026-12-02T10:30:00+08:00')).toBe('2026年12月2日 10:30')
    expect(format.clock('2026-12-03T00:33:16+08:00')).toBe('00:33:16')
  })
  test('every state has words and a mark', () => {
    Object.values(format.APPLICATION_STATES).concat(Object.values(format.NOTICE_STATES)).forEach((s) => {
      expect(s.text.length).toBeGreaterThan(1)
      expect(s.mark.length).toBeGreaterThan(0)
    })
    expect(format.state(format.NOTICE_STATES, 'new_state')).toEqual({ text: 'new_state', mark: '·' })
  })
})

describe('QR encoder', () => {
  function decode(text) {
    const q = qrcode.encode(text)
    const scale = 4
    const quiet = 4
    const w = (q.size + quiet * 2) * scale
    const img = new Uint8ClampedArray(w * w * 4).fill(255)
    for (let y = 0; y < q.size; y++)
      for (let x = 0; x < q.size; x++)
        if (q.modules[y][x])
          for (let dy = 0; dy < scale; dy++)
            for (let dx = 0; dx < scale; dx++) {
              const p = (((y + quiet) * scale + dy) * w + (x + quiet) * scale + dx) * 4
              img[p] = img[p + 1] = img[p + 2] = 0
            }
    const r = jsQR(img, w, w)
    return { q, data: r && r.data }
  }

  test.each([
    ['a 医保码 token', 'v1.rkAK4kFgiJlsn8FCcbQUZ6x0mJmxt9Vi'],
    ['one byte', 'a'],
    ['Chinese text (UTF-8)', '亲情医保 医保码'],
    ['version 7+ (version information)', 'x'.repeat(150)],
    ['the largest (version 10)', 'y'.repeat(213)],
  ])('%s decodes back to the same text', (_, text) => {
    const { data } = decode(text)
    expect(data).toBe(text)
  })

  test('picks the smallest version that fits', () => {
    expect(qrcode.encode('a').version).toBe(1)
    expect(qrcode.encode('v1.rkAK4kFgiJlsn8FCcbQUZ6x0mJmxt9Vi').version).toBe(3)
  })

  test('refuses text longer than version 10 holds', () => {
    expect(() => qrcode.encode('z'.repeat(214))).toThrow(/too long/)
  })
})

describe('errors', () => {
  test("the server's message and fix are shown as sent", () => {
    const e = errors.fromResponse({
      statusCode: 409,
      data: { error: { code: 'MEMBER_LIMIT_REACHED', message: '最多 5 人', fix: '先解除一位', application_id: 'a1' } },
      header: {},
    })
    const d = errors.describe(e)
    expect(d).toMatchObject({ code: 'MEMBER_LIMIT_REACHED', message: '最多 5 人', fix: '先解除一位', retry: false })
    expect(e.detail.application_id).toBe('a1')
  })
  test('a 429 says how many seconds to wait', () => {
    const e = errors.fromResponse({ statusCode: 429, data: { error: { code: 'RATE_LIMITED', message: '太频繁' } }, header: { 'Retry-After': '30' } })
    expect(errors.describe(e).fix).toBe('操作太频繁了,请 30 秒后再试。')
  })
  test('422 fields are named in Chinese', () => {
    const e = errors.fromResponse({
      statusCode: 422,
      data: { error: { code: 'VALIDATION_FAILED', message: '提交的信息有误', fields: { phone: 'INVALID_FORMAT', id_number: 'INVALID_ID_NUMBER' } } },
    })
    expect(errors.describe(e).fields).toEqual([
      { field: 'phone', label: '手机号', text: '格式不正确' },
      { field: 'id_number', label: '证件号码', text: '号码不正确,请逐位核对' },
    ])
  })
  test('every status has a fix, and a non-JSON 502 page still reads in Chinese', () => {
    ;[0, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503].forEach((status) => {
      const d = errors.describe(errors.fromResponse({ statusCode: status, data: '<html>bad gateway</html>' }))
      expect(d.message).toMatch(/[\u4e00-\u9fa5]/)
      expect(d.fix).toMatch(/[\u4e00-\u9fa5]/)
    })
  })
  test('a consent error leads to the privacy page', () => {
    const e = errors.fromResponse({ statusCode: 403, data: { error: { code: 'CONSENT_REQUIRED', message: '需要您同意人脸识别', purpose: 'face' } } })
    expect(errors.describe(e).action).toEqual({ label: '去隐私设置授权', url: '/pages/privacy/index' })
  })
  test('a failed wx API reads in Chinese too', () => {
    const d = errors.describe({ errMsg: 'chooseMedia:fail auth deny' })
    expect(d.message).toBe('操作没有完成')
    expect(d.fix).toContain('chooseMedia:fail auth deny')
  })
})

describe('privacy consents in either list shape', () => {
  test('items with withdrawn ones left out', () => {
    expect(
      privacy.normalise({ items: [{ purpose: 'face', version: 'v2' }, { purpose: 'medical_records', version: 'v2', withdrawn_at: '2026-12-01' }] }),
    ).toEqual({ version: 'v2', purposes: ['face'] })
  })
  test('a version with a list of purposes', () => {
    expect(privacy.normalise({ version: 'v3', purposes: ['face', { id: 'id_documents' }] })).toEqual({ version: 'v3', purposes: ['face', 'id_documents'] })
  })
  test('nothing yet', () => {
    expect(privacy.normalise({ items: [] })).toEqual({ version: null, purposes: [] })
  })
})
