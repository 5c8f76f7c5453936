// Journey tests share one real server: started here, probed for which API.md v1.1 paths it
// serves (GET /api/openapi.json), described in a state file the test files read.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { start } = require('./server')
const { send } = require('./http-transport')
const probes = require('./probes')

module.exports = async function globalSetup() {
  const server = await start()
  const spec = await send(server.baseUrl + '/api/openapi.json', 'GET', {}, null)
  const paths = {}
  Object.keys(spec.data.paths || {}).forEach((p) => (paths[p] = Object.keys(spec.data.paths[p])))
  const state = {
    baseUrl: server.baseUrl,
    pid: server.pid,
    dataDir: server.dataDir,
    paths,
    schemas: JSON.stringify(spec.data.components || {}),
  }
  const file = path.join(os.tmpdir(), 'qq-miniprogram-journey-' + process.pid + '.json')
  fs.writeFileSync(file, JSON.stringify(state))
  process.env.QQ_JOURNEY_STATE = file
  globalThis.__QQ_SERVER__ = server
  const missing = probes.missing(state)
  process.stdout.write(
    '\njourney tests: real server at ' + server.baseUrl +
      (missing.length ? '; v1.1 steps skipped until it serves them:\n  - ' + missing.join('\n  - ') + '\n' : '; every v1.1 step runs\n'),
  )
}
