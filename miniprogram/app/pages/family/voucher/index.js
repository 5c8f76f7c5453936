// A member's dynamic 医保码 (GET …/voucher → {qr_token, expires_at, ttl_seconds}): drawn as a
// QR code on a 2d canvas, a new one fetched before this one expires (and on 刷新 after a scan:
// a code works once), the screen bright and kept on while the page is shown.

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const qrcode = require('../../../utils/qrcode')
const format = require('../../../utils/format')

const EARLY_MS = 10000 // fetch the next code this long before the current one expires
const QUIET = 4 // white modules around the code

Component({
  behaviors: [page],
  data: { id: '', member: null, voucher: null, expiresText: '', refreshedAt: 0 },
  methods: {
    onLoad(query) {
      this.setData({ id: query.id })
    },
    onShow() {
      this.brighten()
      this.reload()
    },
    onHide() {
      this.stop()
    },
    onUnload() {
      this.stop()
    },
    brighten() {
      wx.setKeepScreenOn({ keepScreenOn: true })
      if (this.savedBrightness === undefined) {
        wx.getScreenBrightness({
          success: (r) => {
            this.savedBrightness = r.value
            wx.setScreenBrightness({ value: 1 })
          },
          fail: () => wx.setScreenBrightness({ value: 1 }),
        })
      }
    },
    stop() {
      clearTimeout(this.timer)
      this.timer = null
      wx.setKeepScreenOn({ keepScreenOn: false })
      if (this.savedBrightness !== undefined) {
        wx.setScreenBrightness({ value: this.savedBrightness })
        this.savedBrightness = undefined
      }
    },
    async reload() {
      clearTimeout(this.timer)
      if (!this.data.member) {
        const list = await this.guard(() => api.get('/family/members'))
        if (list === undefined) return
        const m = (list.items || []).find((x) => x.id === this.data.id)
        if (m) {
          this.setData({
            member: { name: m.member.name, relationship: m.relationship_label || format.label(format.RELATIONSHIPS, m.relationship) },
          })
        }
      }
      const v = await this.guard(() => api.get('/family/members/' + this.data.id + '/voucher'))
      if (v === undefined) return
      const ttl = (v.ttl_seconds || 60) * 1000
      // the canvas exists once the view shows the voucher: draw after that render
      this.setData({ voucher: v, expiresText: format.clock(v.expires_at), refreshedAt: Date.now() }, () => this.draw(v.qr_token))
      this.timer = setTimeout(() => this.reload(), Math.max(ttl - EARLY_MS, 5000))
    },
    draw(text) {
      const q = qrcode.encode(text)
      wx.createSelectorQuery()
        .in(this)
        .select('#qr')
        .fields({ node: true, size: true })
        .exec((res) => {
          const r = res && res[0]
          if (!r || !r.node) return
          const dpr = (wx.getWindowInfo ? wx.getWindowInfo().pixelRatio : 2) || 2
          const canvas = r.node
          canvas.width = r.width * dpr
          canvas.height = r.height * dpr
          const ctx = canvas.getContext('2d')
          ctx.scale(dpr, dpr)
          const n = q.size + QUIET * 2
          const cell = Math.floor((Math.min(r.width, r.height) / n) * 100) / 100
          ctx.fillStyle = '#ffffff'
          ctx.fillRect(0, 0, r.width, r.height)
          ctx.fillStyle = '#000000'
          for (let y = 0; y < q.size; y++) {
            for (let x = 0; x < q.size; x++) {
              if (q.modules[y][x]) ctx.fillRect((x + QUIET) * cell, (y + QUIET) * cell, cell, cell)
            }
          }
          this.drawn = { size: q.size, cell }
        })
    },
    onRefresh() {
      this.reload()
    },
  },
})
