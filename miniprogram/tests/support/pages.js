// Drives the mini-program's pages under miniprogram-simulate like WeChat would: open a page
// by its path with a query (onLoad, onShow), follow wx.navigateTo / redirectTo /
// navigateBack / reLaunch, tap and type into elements, read the rendered text.

const path = require('path')
const simulate = require('miniprogram-simulate')

const ROOT = path.join(__dirname, '..', '..', 'app')
const ids = {}

// Shared components are loaded once per test file and handed to every page: simulate runs a
// component's js with require(), which jest caches, so a second load of the same component
// would never call Component() again.
let shared = null
function components() {
  if (!shared) {
    shared = { 'error-panel': simulate.load(path.join(ROOT, 'components/error-panel/index'), 'error-panel', { rootPath: ROOT }) }
  }
  return shared
}

function parse(url) {
  const [p, q] = String(url).replace(/^\//, '').split('?')
  const query = {}
  ;(q || '').split('&').filter(Boolean).forEach((kv) => {
    const [k, v] = kv.split('=')
    query[decodeURIComponent(k)] = decodeURIComponent(v || '')
  })
  return { route: p, query }
}

class MiniProgram {
  constructor(fake) {
    this.fake = fake
    this.stack = []
    this.navSeen = 0
  }

  get page() {
    return this.stack[this.stack.length - 1].comp
  }

  get route() {
    return this.stack.length ? this.stack[this.stack.length - 1].route : null
  }

  async open(url) {
    const { route, query } = parse(url)
    if (!ids[route]) ids[route] = simulate.load(path.join(ROOT, route), { rootPath: ROOT, usingComponents: components() })
    const comp = simulate.render(ids[route])
    comp.attach(document.createElement('parent-wrapper'))
    this.stack.push({ route, query, comp })
    this.navSeen = this.fake.nav.length
    const inst = comp.instance
    if (inst.onLoad) inst.onLoad(query)
    if (inst.onShow) inst.onShow()
    if (inst.onReady) inst.onReady()
    await this.fake.settle()
    return comp
  }

  close() {
    const top = this.stack.pop()
    if (!top) return
    if (top.comp.instance.onUnload) top.comp.instance.onUnload()
    top.comp.detach()
  }

  // Navigation the pages asked for since the last open / follow, in order.
  pendingNav() {
    return this.fake.nav.slice(this.navSeen)
  }

  // Follow the last navigation request; returns its route.
  async follow() {
    const pending = this.pendingNav()
    if (!pending.length) throw new Error('no navigation to follow (on ' + this.route + ')')
    const n = pending[pending.length - 1]
    this.navSeen = this.fake.nav.length
    if (n.type === 'navigateBack') {
      for (let i = 0; i < n.delta && this.stack.length > 1; i++) this.close()
      const inst = this.page.instance
      if (inst.onShow) inst.onShow()
      await this.fake.settle()
      return this.route
    }
    if (n.type === 'redirectTo') this.close()
    if (n.type === 'reLaunch' || n.type === 'switchTab') while (this.stack.length) this.close()
    await this.open(n.url)
    return this.route
  }

  find(selector, within) {
    const parts = Array.isArray(selector) ? selector : [selector]
    let c = within || this.page
    for (const s of parts) {
      c = c.querySelector(s)
      if (!c) throw new Error('no element ' + parts.join(' > ') + ' on ' + this.route)
    }
    return c
  }

  exists(selector) {
    try {
      this.find(selector)
      return true
    } catch (e) {
      return false
    }
  }

  async tap(selector, detail) {
    this.find(selector).dispatchEvent('tap', detail ? { detail } : {})
    await this.fake.settle()
  }

  async fire(selector, event, detail) {
    this.find(selector).dispatchEvent(event, { detail: detail || {} })
    await this.fake.settle()
  }

  async type(selector, value) {
    return this.fire(selector, 'input', { value })
  }

  async pick(selector, value) {
    return this.fire(selector, 'change', { value })
  }

  text() {
    return this.page.dom.textContent.replace(/\s+/g, ' ')
  }

  get data() {
    return this.page.data
  }
}

module.exports = { MiniProgram, parse, ROOT }
