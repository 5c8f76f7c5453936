// Journey tests: the pages against the real server started by global-setup.js. Steps here
// tap through the pages like a person would (helpers for the parts several journeys share);
// v1.1 steps are skipped, with the missing endpoint named, until the server serves it.

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const config = require('../../app/config')
const http = require('./http-transport')
const { installWx } = require('./wx')
const { MiniProgram } = require('./pages')
const { cli } = require('./server')
const probes = require('./probes')

const state = JSON.parse(fs.readFileSync(process.env.QQ_JOURNEY_STATE, 'utf8'))
const HUKOU = path.join(__dirname, '..', 'fixtures', 'hukou.png')

function serves(method, p) {
  return (state.paths[p] || []).indexOf(method.toLowerCase()) >= 0
}

// test, or test.skip with a name that says what the server lacks (support/probes.js)
function when(probe) {
  if (probes.served(state, probe)) return test
  return (name, fn) => test.skip(name + ' — skipped: ' + probes.reason(probe), fn)
}

function start(user) {
  config.baseUrl = state.baseUrl
  config.demo = null
  const fake = installWx({ transport: http, user })
  return { fake, mp: new MiniProgram(fake) }
}

// On a server with a privacy notice the home page sends a new user there first: agree to
// every purpose and come back.
async function passPrivacy(mp, fake) {
  const nav = mp.pendingNav()
  if (!nav.length || !/pages\/privacy\/index/.test(nav[nav.length - 1].url)) return false
  await mp.follow()
  const all = mp.data.purposes.map((p) => p.id)
  await mp.fire('#purposes', 'change', { value: all })
  await mp.tap('#agree')
  await mp.follow() // navigateBack → home
  return true
}

// Home → 去实名认证 → name, ID, face check → back home.
async function realname(mp, fake, person) {
  await mp.open('pages/index/index')
  await passPrivacy(mp, fake)
  await mp.tap('#go-realname')
  await mp.follow()
  await mp.type('#name', person.name)
  await mp.type('#id-number', person.id)
  expect(mp.text()).toContain('号码格式正确')
  await mp.tap('#start')
  expect(mp.text()).toContain('实名认证成功')
  await mp.tap('#done')
  await mp.follow()
  expect(mp.route).toBe('pages/index/index')
  expect(mp.text()).toContain('已实名认证')
}

// A user on the home page, past the privacy notice, real-name verified as `person`.
async function signIn(user, person) {
  const { fake, mp } = start(user)
  await mp.open('pages/index/index')
  await passPrivacy(mp, fake)
  if (!mp.data.me || !mp.data.me.realname_verified) await realname(mp, fake, person)
  return { fake, mp }
}

// Home → 添加家人 → precheck → application → materials → 承诺书 (read, signed by hand) → the
// submit page, ready to submit. Answers the application id.
async function prepareBinding(mp, fake, member, opts) {
  const o = Object.assign({ relationship: 0, materials: ['household_register'] }, opts || {})
  await mp.tap('#menu-0')
  expect(await mp.follow()).toBe('pages/bind/member/index')
  await mp.pick('#relationship', o.relationship)
  await mp.type('#name', member.name)
  await mp.type('#id-number', member.id)
  await mp.tap('#precheck')
  expect(mp.text()).toContain('可以办理')
  await mp.tap('#create')
  expect(await mp.follow()).toBe('pages/bind/materials/index')
  const id = mp.stack[mp.stack.length - 1].query.id
  for (const kind of o.materials) {
    const k = mp.data.kinds.findIndex((x) => x.value === kind)
    await mp.pick('#kind', k)
    fake.media.push({ tempFilePath: HUKOU, size: fs.statSync(HUKOU).size })
    await mp.tap('#choose-photo')
  }
  expect(mp.data.materials.length).toBe(o.materials.length)
  await mp.tap('#next')
  expect(await mp.follow()).toBe('pages/bind/commitment/index')
  expect(mp.text()).toContain('个人承诺书')
  expect(mp.data.readToEnd).toBe(false) // the sign button waits for the end of the text
  await mp.fire('#commitment-text', 'scrolltolower')
  mp.find('#sign-pad').dispatchEvent('touchstart', { touches: [{ x: 10, y: 10 }] })
  mp.find('#sign-pad').dispatchEvent('touchmove', { touches: [{ x: 60, y: 40 }] })
  await fake.settle()
  await mp.tap('#sign')
  expect(await mp.follow()).toBe('pages/bind/submit/index')
  return id
}

// A hospital: `python -m server institution add` (the README's way), then signed requests.
function institution(code, name) {
  // prints "institution CODE added; its secret (shown once):" and the secret on the last line
  const out = cli(state.dataDir, ['institution', 'add', code, name, '420100'])
  const lines = out.stdout.split('\n').map((l) => l.trim()).filter(Boolean)
  if (!/secret/.test(out.stdout) || !lines.length) throw new Error('no secret in: ' + out.stdout + out.stderr)
  const secret = lines[lines.length - 1]
  return {
    code,
    post(p, body) {
      const raw = JSON.stringify(body)
      const ts = String(Math.floor(Date.now() / 1000))
      const nonce = crypto.randomBytes(12).toString('hex')
      const sig = crypto.createHmac('sha256', secret).update(ts + '\n' + nonce + '\n' + raw).digest('hex')
      return http.send(
        state.baseUrl + '/api/v1/institution' + p,
        'POST',
        {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(raw),
          'X-Institution-Code': code,
          'X-Timestamp': ts,
          'X-Nonce': nonce,
          'X-Signature': sig,
        },
        raw,
      )
    },
  }
}

module.exports = { state, serves, when, start, signIn, passPrivacy, realname, prepareBinding, institution, HUKOU }
