// 个人承诺书 (step 3 of 4): the full current text (GET /commitments/current); the sign
// button works once the text has been scrolled to its end; an optional handwritten
// signature on a canvas goes along as base64 PNG. POST …/commitment {version, sha256,
// signature_image?}: the server records exactly what was shown.

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const wxp = require('../../../utils/wxp')

Component({
  behaviors: [page],
  data: { id: '', commitment: null, readToEnd: false, signed: false, hasSignature: false },
  methods: {
    onLoad(query) {
      this.setData({ id: query.id })
      this.reload()
    },
    async reload() {
      const c = await this.guard(() => api.get('/commitments/current'))
      if (c === undefined) return
      // a text shorter than its box has no end to scroll to: measure once it is rendered
      this.setData({ commitment: c }, () => this.measure('#commitment-text'))
    },
    measure(selector) {
      wx.createSelectorQuery()
        .in(this)
        .select(selector)
        .fields({ size: true, scrollOffset: true })
        .exec((res) => {
          const r = res && res[0]
          if (r && r.scrollHeight && r.height && r.scrollHeight <= r.height + 2) this.setData({ readToEnd: true })
        })
    },
    onReadEnd() {
      if (!this.data.readToEnd) this.setData({ readToEnd: true })
    },
    onReady() {
      wx.createSelectorQuery()
        .in(this)
        .select('#sign-pad')
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
          ctx.lineWidth = 4
          ctx.lineCap = 'round'
          ctx.lineJoin = 'round'
          ctx.strokeStyle = '#000000'
          this.pad = { canvas, ctx, width: r.width, height: r.height }
        })
    },
    point(e) {
      const t = (e.touches && e.touches[0]) || (e.changedTouches && e.changedTouches[0]) || {}
      return { x: t.x !== undefined ? t.x : t.clientX || 0, y: t.y !== undefined ? t.y : t.clientY || 0 }
    },
    onSignStart(e) {
      if (!this.pad) return
      const p = this.point(e)
      this.pad.ctx.beginPath()
      this.pad.ctx.moveTo(p.x, p.y)
      this.pad.drawing = true
    },
    onSignMove(e) {
      if (!this.pad || !this.pad.drawing) return
      const p = this.point(e)
      this.pad.ctx.lineTo(p.x, p.y)
      this.pad.ctx.stroke()
      if (!this.data.hasSignature) this.setData({ hasSignature: true })
    },
    onSignEnd() {
      if (this.pad) this.pad.drawing = false
    },
    onClearSignature() {
      if (this.pad) this.pad.ctx.clearRect(0, 0, this.pad.width, this.pad.height)
      this.setData({ hasSignature: false })
    },
    async signatureImage() {
      if (!this.data.hasSignature || !this.pad) return undefined
      const file = await wxp.call('canvasToTempFilePath', { canvas: this.pad.canvas, fileType: 'png' })
      const read = await new Promise((resolve, reject) =>
        wx.getFileSystemManager().readFile({ filePath: file.tempFilePath, encoding: 'base64', success: resolve, fail: reject }),
      )
      return read.data
    },
    async onSign() {
      if (!this.data.readToEnd || !this.data.commitment) return
      const c = this.data.commitment
      const r = await this.guard(async () => {
        const image = await this.signatureImage()
        const body = { version: c.version, sha256: c.sha256 }
        if (image) body.signature_image = image
        return api.post('/family/applications/' + this.data.id + '/commitment', body)
      })
      if (r === undefined) return
      this.setData({ signed: true })
      wx.redirectTo({ url: '/pages/bind/submit/index?id=' + this.data.id })
    },
  },
})
