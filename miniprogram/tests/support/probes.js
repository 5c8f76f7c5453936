// Which API.md v1.1 additions the running server serves, from its GET /api/openapi.json:
// the journey tests skip a step until its endpoint (or field) is there.

const PROBES = {
  privacy: { path: ['GET', '/api/v1/privacy/notice'] },
  faceSessions: { path: ['POST', '/api/v1/face/sessions'] },
  cancelApplication: { path: ['DELETE', '/api/v1/family/applications/{id}'] },
  removeMaterial: { path: ['DELETE', '/api/v1/family/applications/{id}/materials/{material_id}'] },
  export: { path: ['GET', '/api/v1/me/export'] },
  deleteAccount: { path: ['DELETE', '/api/v1/me'] },
  activation: { word: 'member_activated', what: 'member_activated in its application answer (代激活)' },
  documentsWay: { word: '"verification"', what: 'submit {"verification": "documents"} (the documents way)' },
}

function served(state, name) {
  const p = PROBES[name]
  if (p.path) return (state.paths[p.path[1]] || []).indexOf(p.path[0].toLowerCase()) >= 0
  return state.schemas.indexOf(p.word) >= 0
}

function reason(name) {
  const p = PROBES[name]
  return p.path
    ? 'the server does not serve ' + p.path[0] + ' ' + p.path[1] + ' yet (API.md v1.1)'
    : 'the server does not know ' + p.what + ' yet (API.md v1.1)'
}

function missing(state) {
  return Object.keys(PROBES)
    .filter((n) => !served(state, n))
    .map(reason)
}

module.exports = { PROBES, served, reason, missing }
