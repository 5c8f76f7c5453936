// The real server for journey tests: `.venv/bin/python -m server --port P` on the embedded
// defaults (SQLite in a temp DATA_DIR, in-process Redis and fake WeChat, demo data) on a free
// loopback port; ready when it prints its "listening on" line.

const { spawn, spawnSync } = require('child_process')
const fs = require('fs')
const http = require('http')
const net = require('net')
const os = require('os')
const path = require('path')

const REPO = path.resolve(__dirname, '..', '..', '..')

function python() {
  return process.env.QQ_PYTHON || path.join(REPO, '.venv', 'bin', 'python')
}

// A free loopback port below the ephemeral range (STYLE.md), tried by binding it.
async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000)
    const ok = await new Promise((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new Error('no free loopback port')
}

function env(dataDir) {
  const e = Object.assign({}, process.env, { DATA_DIR: dataDir, APP_ENV: 'local', PYTHONUNBUFFERED: '1' })
  ;['DATABASE_URL', 'REDIS_URL', 'WECHAT_API_BASE', 'FACE_API_BASE', 'CONFIG_FILE'].forEach((k) => delete e[k])
  return e
}

function get(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', () => resolve(0))
  })
}

async function ready(baseUrl, log) {
  const deadline = Date.now() + 60000
  while (Date.now() < deadline) {
    if ((await get(baseUrl + '/healthz')) === 200) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('server not ready in 60 s:\n' + log())
}

async function start() {
  const py = python()
  if (!fs.existsSync(py)) throw new Error('no ' + py + ': run `make test` (or create .venv, see README) first')
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qq-miniprogram-'))
  const port = await freePort()
  const child = spawn(py, ['-m', 'server', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: REPO,
    env: env(dataDir),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 60 s:\n' + log)), 60000)
    const onData = (d) => {
      log = (log + d.toString()).slice(-20000)
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error('server exited with ' + code + ':\n' + log))
    })
  })
  // the banner comes before the socket is bound: ready when /healthz answers (bounded)
  await ready(baseUrl, () => log)
  return { baseUrl, pid: child.pid, dataDir, child }
}

// `python -m server ARGS` on the same data directory (e.g. `institution add`).
function cli(dataDir, args) {
  const r = spawnSync(python(), ['-m', 'server'].concat(args), { cwd: REPO, env: env(dataDir), encoding: 'utf8' })
  if (r.status !== 0) throw new Error('python -m server ' + args.join(' ') + ' failed:\n' + r.stdout + r.stderr)
  return { stdout: r.stdout, stderr: r.stderr }
}

module.exports = { start, cli, freePort, REPO }
