// 谁绑定了我 (the member's side): who holds me in their 亲情账户 (GET /family/binders) — they
// can show my 医保码 and see my medical spending — and ending one (DELETE /family/binders/{id}).

const page = require('../../utils/page')
const api = require('../../utils/api')
const format = require('../../utils/format')

// relationship is what I am to the binder (API.md); say it from my side
const ME_TO_BINDER = { parent: '您是 TA 的父母', child: '您是 TA 的子女', spouse: '您是 TA 的配偶' }

Component({
  behaviors: [page],
  data: { items: [], loaded: false },
  methods: {
    onShow() {
      this.reload()
    },
    async reload() {
      const r = await this.guard(() => api.get('/family/binders'))
      if (r === undefined) return
      this.setData({
        loaded: true,
        items: (r.items || []).map((b) => ({
          id: b.id,
          name: (b.binder && b.binder.name) || '(未留姓名)',
          relationship: ME_TO_BINDER[b.relationship] || format.label(format.RELATIONSHIPS, b.relationship),
          bound: format.date(b.bound_at),
        })),
      })
    },
    async onEnd(e) {
      const id = e.currentTarget.dataset.id
      const b = this.data.items.find((x) => x.id === id)
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '解除绑定',
          content: '解除后,' + (b ? b.name : '对方') + '将不能再出示您的医保码、查看您的就医记录。确定解除吗?',
          confirmText: '解除绑定',
          cancelText: '再想想',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(() => api.del('/family/binders/' + id))
      if (r === undefined) return
      this.reload()
    },
  },
})
