// Everything a bureau changes per deployment lives in this one file (README "Before publishing").
module.exports = {
  // The server's base URL, no trailing slash. The default is the demo of `make run` on this
  // computer (DevTools only: turn off "校验合法域名" there). On a phone it must be https and on
  // the mini-program's request-domain whitelist (uploadFile too).
  baseUrl: 'http://127.0.0.1:8080',
  apiPrefix: '/api/v1',
  timeoutMs: 15000,

  // Subscribe-message template ids (公众平台 → 订阅消息), by notice kind. They must match the
  // server's [push.kinds.<kind>] mp_template (config/default.toml holds the demo ones). An
  // empty id is never asked for. WeChat asks for at most 3 ids per tap.
  subscribeTemplates: {
    family_settlement: 'DEMO_MP_FAMILY_SETTLEMENT',
    reversal: 'DEMO_MP_REVERSAL',
    mutual_aid_debit: 'DEMO_MP_MUTUAL_AID_DEBIT',
    member_settlement: 'DEMO_MP_MEMBER_SETTLEMENT',
    binding_result: '',
    member_bound: '',
    member_unbound: '',
  },

  // DEMO ONLY — set to null before publishing. DevTools' wx.login codes and 人脸核身 do not
  // work against the demo server's fake WeChat; with `demo` set, login sends the demo code
  // `demo-<user>-<n>` and the face check answers `<faceResult>-<n>` without a camera.
  demo: { user: 'devtools', faceResult: 'ok' },
}
