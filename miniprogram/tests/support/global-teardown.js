const fs = require('fs')

module.exports = async function globalTeardown() {
  const server = globalThis.__QQ_SERVER__
  if (server && server.child.exitCode === null) {
    const gone = new Promise((resolve) => server.child.once('exit', resolve))
    server.child.kill('SIGTERM')
    await gone
  }
  if (server) fs.rmSync(server.dataDir, { recursive: true, force: true })
  if (process.env.QQ_JOURNEY_STATE) fs.rmSync(process.env.QQ_JOURNEY_STATE, { force: true })
}
