// The privacy notice (API.md v1.1 "Privacy"): versioned text + per-purpose consent.

const api = require('./api')
const compat = require('./compat')

const LOCAL = 'qq.privacy' // {version}: the notice version this phone accepted last

// GET /privacy/consents in whichever list shape the server answers:
// {version, purposes: [...]}, {items|consents: [{purpose, version, withdrawn_at?}]}.
function normalise(body) {
  const b = body || {}
  let purposes = []
  let version = b.version || null
  const list = b.items || b.consents
  if (Array.isArray(list)) {
    list
      .filter((c) => c && !c.withdrawn_at && c.state !== 'withdrawn' && c.granted !== false)
      .forEach((c) => {
        purposes.push(c.purpose || c.id)
        version = version || c.version || c.notice_version || null
      })
  } else if (Array.isArray(b.purposes)) {
    purposes = b.purposes.map((p) => (typeof p === 'string' ? p : p.purpose || p.id))
  }
  return { version, purposes: purposes.filter(Boolean) }
}

// → {served: false} on a server without privacy endpoints; else the notice, what the user
// has consented to, and whether the current notice still has to be shown.
async function status() {
  let notice
  let consents
  try {
    ;[notice, consents] = await Promise.all([api.get('/privacy/notice'), api.get('/privacy/consents')])
  } catch (e) {
    if (compat.missingEndpoint(e)) return { served: false }
    throw e
  }
  const c = normalise(consents)
  const local = wx.getStorageSync(LOCAL) || {}
  const accepted = c.version === notice.version || local.version === notice.version
  return { served: true, notice, version: c.version, purposes: c.purposes, accepted }
}

async function consent(notice, purposes) {
  const res = await api.post('/privacy/consents', {
    version: notice.version,
    sha256: notice.sha256,
    purposes,
  })
  wx.setStorageSync(LOCAL, { version: notice.version })
  return res
}

function withdraw(purpose) {
  return api.del('/privacy/consents/' + encodeURIComponent(purpose))
}

module.exports = { status, consent, withdraw, normalise, LOCAL }
