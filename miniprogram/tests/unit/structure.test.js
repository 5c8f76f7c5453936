// Static checks over the mini-program's files: every page registered and complete, every
// page reachable from the home page, every page path the backend sends exists, the demo
// appid and subscribe template ids agree with the server's config, and the accessibility
// rules (text ≥ 28rpx and scaled by WeChat's font size, contrast ≥ 7:1, labels).

const fs = require('fs')
const path = require('path')
const { ROOT } = require('../support/pages')

const REPO = path.resolve(ROOT, '..', '..')
const appJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'app.json'), 'utf8'))
const PAGES = appJson.pages

function read(rel) {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8')
}

function walk(dir, ext, out = []) {
  for (const f of fs.readdirSync(dir)) {
    const p = path.join(dir, f)
    if (fs.statSync(p).isDirectory()) walk(p, ext, out)
    else if (p.endsWith(ext)) out.push(p)
  }
  return out
}

test('every registered page has its js, json, wxml and wxss and is a Component with the page behaviour', () => {
  for (const p of PAGES) {
    for (const ext of ['.js', '.json', '.wxml', '.wxss']) expect(fs.existsSync(path.join(ROOT, p + ext))).toBe(true)
    const js = read(p + '.js')
    expect(js).toMatch(/Component\(\{\s*behaviors: \[page\]/)
    expect(read(p + '.wxml')).toMatch(/^<page-meta page-style="\{\{pageStyle\}\}"><\/page-meta>/)
  }
})

test('every page is reachable from the home page by taps', () => {
  const links = {}
  for (const p of PAGES) {
    const src = read(p + '.js') + read(p + '.wxml')
    links[p] = Array.from(src.matchAll(/\/?(pages\/[a-z0-9\-/]+\/index)/g)).map((m) => m[1])
  }
  // error-panel actions lead to these from any page that shows an error
  const panel = read('utils/errors.js')
  const fromErrors = Array.from(panel.matchAll(/\/(pages\/[a-z0-9\-/]+\/index)/g)).map((m) => m[1])
  const seen = new Set(['pages/index/index'])
  const queue = ['pages/index/index']
  while (queue.length) {
    const p = queue.shift()
    for (const q of links[p].concat(fromErrors)) {
      if (!seen.has(q)) {
        expect(PAGES).toContain(q)
        seen.add(q)
        queue.push(q)
      }
    }
  }
  expect(PAGES.filter((p) => !seen.has(p))).toEqual([])
})

test('the pages the backend sends (menu, push messages) exist', () => {
  // every "pages/…" string in the backend's code and config (tests hold made-up ones)
  const sent = new Set()
  const skip = new Set(['tests', 'miniprogram', 'node_modules', '.venv', '.git', 'bench', 'docs'])
  const scan = (dir) => {
    for (const f of fs.readdirSync(dir)) {
      const p = path.join(dir, f)
      if (fs.statSync(p).isDirectory()) {
        if (!skip.has(f) && !f.startsWith('.')) scan(p)
      } else if (/\.(py|toml)$/.test(f)) {
        for (const m of fs.readFileSync(p, 'utf8').matchAll(/["'](pages\/[A-Za-z0-9_\-/]+)/g)) sent.add(m[1])
      }
    }
  }
  scan(REPO)
  expect(sent).toContain('pages/index/index')
  expect(sent).toContain('pages/notices/index')
  for (const p of sent) expect(PAGES).toContain(p)
})

test('project.config.json carries the demo appid the backend is configured with', () => {
  const project = JSON.parse(fs.readFileSync(path.join(ROOT, '..', 'project.config.json'), 'utf8'))
  const toml = fs.readFileSync(path.join(REPO, 'config', 'default.toml'), 'utf8')
  const appid = /^mp_appid\s*=\s*"([^"]+)"/m.exec(toml)[1] // [wechat] mp_appid (WECHAT_MP_APPID)
  expect(project.appid).toBe(appid)
  expect(project.miniprogramRoot).toBe('app/')
})

test('the subscribe template ids are the server’s mp_template ids', () => {
  const toml = fs.readFileSync(path.join(REPO, 'config', 'default.toml'), 'utf8')
  const config = require('../../app/config')
  for (const m of toml.matchAll(/\[push\.kinds\.(\w+)\][^[]*?mp_template\s*=\s*"([^"]+)"/g)) {
    expect([m[1], config.subscribeTemplates[m[1]]]).toEqual([m[1], m[2]])
  }
})

describe('accessibility', () => {
  const wxss = walk(ROOT, '.wxss')
  const wxml = walk(ROOT, '.wxml')

  test('no text under 28rpx, none in px, and every size scales with WeChat’s font setting', () => {
    for (const f of wxss) {
      const css = fs.readFileSync(f, 'utf8')
      for (const m of css.matchAll(/font-size:\s*([^;]+);/g)) {
        const v = m[1].trim()
        const rpx = /^(\d+)rpx$/.exec(v) || /^calc\((\d+)rpx \* var\(--fs(?:, 1)?\)\)$/.exec(v)
        expect([path.relative(ROOT, f), v, !!rpx && Number(rpx[1]) >= 28]).toEqual([path.relative(ROOT, f), v, true])
      }
      // every fixed rpx size is followed by its scaled twin
      const sizes = Array.from(css.matchAll(/font-size:\s*(\d+)rpx;\s*font-size:\s*calc\((\d+)rpx \* var\(--fs(?:, 1)?\)\);/g))
      const fixed = Array.from(css.matchAll(/font-size:\s*\d+rpx;/g))
      expect([path.relative(ROOT, f), sizes.length]).toEqual([path.relative(ROOT, f), fixed.length])
      sizes.forEach((s) => expect(s[1]).toBe(s[2]))
    }
  })

  test('text and background colours contrast at least 7:1 (WCAG AAA)', () => {
    const css = read('app.wxss')
    const vars = {}
    for (const m of css.matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{6})/g)) vars[m[1]] = m[2]
    const lum = (hex) => {
      const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)))
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    }
    const ratio = (a, b) => {
      const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p)
      return (x + 0.05) / (y + 0.05)
    }
    const texts = ['text', 'text-secondary', 'primary', 'danger', 'success', 'warning']
    const backgrounds = ['bg', 'card', 'danger-bg']
    for (const t of texts) for (const b of backgrounds) expect([t, b, ratio(vars[t], vars[b]) >= 7]).toEqual([t, b, true])
    expect(ratio(vars['on-primary'], vars.primary)).toBeGreaterThanOrEqual(7)
    expect(ratio('#404040', '#e6e6e6')).toBeGreaterThanOrEqual(7) // disabled buttons
  })

  test('every tappable element has a label for screen readers', () => {
    for (const f of wxml) {
      const src = fs.readFileSync(f, 'utf8')
      // a tag's attributes may hold ">" inside quotes ({{a >= b}})
      for (const m of src.matchAll(/<(\w[\w-]*)\b((?:[^>"]|"[^"]*")*)>/g)) {
        if (!/\b(?:bind|catch)tap=/.test(m[2])) continue
        expect([path.relative(ROOT, f), m[1], /aria-label="[^"]+"/.test(m[2])]).toEqual([path.relative(ROOT, f), m[1], true])
        if (m[1] !== 'button') expect([path.relative(ROOT, f), m[1], /aria-role="button"/.test(m[2])]).toEqual([path.relative(ROOT, f), m[1], true])
      }
      for (const m of src.matchAll(/<(canvas|input|picker|image)\b((?:[^>"]|"[^"]*")*)>/g)) {
        expect([path.relative(ROOT, f), m[1], /aria-label="[^"]+"/.test(m[2])]).toEqual([path.relative(ROOT, f), m[1], true])
      }
    }
  })

  test('states are words with a mark, never colour alone', () => {
    for (const f of wxml) {
      const src = fs.readFileSync(f, 'utf8')
      for (const m of src.matchAll(/<view[^>]*class="[^"]*\bstate\b[^"]*"[^>]*>([\s\S]*?)<\/view>/g)) {
        expect(m[1]).toMatch(/aria-hidden="true"/) // the mark
        expect(m[1].replace(/<[^>]+>/g, '').replace(/\{\{[^}]+\}\}/g, 'X')).toMatch(/[\u4e00-\u9fa5X]/)
      }
    }
  })
})
