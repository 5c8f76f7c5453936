// The server for unit tests: a table of routes answering like API.md (errors in its
// envelope); a path nobody registered gets the router's 404 like a server without it.

const config = require('../../app/config')

function fakeServer() {
  const routes = []
  const calls = []
  const prefix = () => config.baseUrl + config.apiPrefix

  function on(method, pattern, handler) {
    const names = []
    const re = new RegExp(
      '^' + pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:(\w+)/g, (_, n) => names.push(n) && '([^/?]+)') + '(?:\\?.*)?$',
    )
    routes.unshift({ method, re, names, handler })
    return api
  }

  function answer(out) {
    if (Array.isArray(out)) return { statusCode: out[0], data: out[1], header: out[2] || {} }
    if (out && out.statusCode) return out
    return { statusCode: out === null ? 204 : 200, data: out === null ? '' : out, header: {} }
  }

  async function handle(req) {
    const full = req.url.slice(prefix().length)
    const pathOnly = full.split('?')[0]
    const query = {}
    ;(full.split('?')[1] || '').split('&').filter(Boolean).forEach((kv) => {
      const [k, v] = kv.split('=')
      query[k] = decodeURIComponent(v || '')
    })
    const call = { method: req.method, path: pathOnly, query, body: req.data, header: req.header, upload: req.upload ? req : null }
    calls.push(call)
    for (const r of routes) {
      const m = r.method === req.method && r.re.exec(pathOnly)
      if (m) {
        const params = {}
        r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])))
        return answer(await r.handler(Object.assign({ params }, call)))
      }
    }
    return answer([404, { error: { code: 'NOT_FOUND', message: '请求的资源不存在' } }])
  }

  function error(status, code, message, extra) {
    return [status, { error: Object.assign({ code, message }, extra || {}) }]
  }

  const api = {
    on,
    calls,
    error,
    request: handle,
    upload: handle,
    called: (method, p) => calls.filter((c) => c.method === method && c.path === p),
    last: (method, p) => {
      const list = calls.filter((c) => c.method === method && c.path === p)
      return list[list.length - 1]
    },
  }
  return api
}

// A server that knows the signed-in basics: login, refresh, /me.
function baseServer(opts) {
  const o = Object.assign({ verified: true, privacy: false }, opts || {})
  const s = fakeServer()
  let n = 0
  s.on('POST', '/auth/login', () => {
    n += 1
    return { access_token: 'at-' + n, refresh_token: 'rt-' + n, expires_in: 900, user: { id: 1, realname_verified: o.verified } }
  })
  s.on('GET', '/me', () =>
    o.verified
      ? {
          id: 1,
          realname_verified: true,
          name: '张*',
          id_number: '4201**********1232',
          insurance: { insurance_type: 'employee', region_code: '420100', status: 'active', has_personal_account: true, voucher_activated: true },
        }
      : { id: 1, realname_verified: false },
  )
  s.on('GET', '/family/members', () => ({ items: [] }))
  if (o.privacy) {
    s.on('GET', '/privacy/notice', () => PRIVACY_NOTICE)
    s.on('GET', '/privacy/consents', () => ({ items: [] }))
  }
  return s
}

const PRIVACY_NOTICE = {
  version: '2026-12',
  title: '亲情医保个人信息保护告知书',
  text: '我们如何处理您的个人信息……',
  sha256: 'a'.repeat(64),
  purposes: [
    { id: 'face', title: '人脸识别', text: '用于本人和家人的实名核验' },
    { id: 'id_documents', title: '身份证件材料', text: '户口本、身份证照片' },
    { id: 'medical_records', title: '就医结算记录', text: '让绑定人查看家人的就医记录' },
  ],
}

module.exports = { fakeServer, baseServer, PRIVACY_NOTICE }
