// 隐私告知与授权 (API.md v1.1 "Privacy"): the versioned notice in full, then a separate
// choice per purpose (face, identity documents, medical records …), none preselected
// (PIPL art. 29: separate consent). Later visits: what is granted, each withdrawable.

const page = require('../../utils/page')
const privacy = require('../../utils/privacy')

Component({
  behaviors: [page],
  data: { first: false, served: true, notice: null, purposes: [], granted: [], accepted: false, done: false },
  methods: {
    onLoad(query) {
      this.setData({ first: !!(query && query.first) })
    },
    onShow() {
      this.reload()
    },
    async reload() {
      const s = await this.guard(() => privacy.status())
      if (s === undefined) return
      if (!s.served) {
        this.setData({ served: false })
        return
      }
      const granted = s.purposes || []
      this.setData({
        notice: s.notice,
        accepted: s.accepted,
        granted,
        purposes: (s.notice.purposes || []).map((p) => ({
          id: p.id,
          title: p.title,
          text: p.text,
          checked: granted.indexOf(p.id) >= 0,
          granted: granted.indexOf(p.id) >= 0,
        })),
      })
    },
    onToggle(e) {
      const chosen = e.detail.value || []
      this.setData({
        purposes: this.data.purposes.map((p) => Object.assign({}, p, { checked: chosen.indexOf(p.id) >= 0 })),
      })
    },
    // The button is open-type="agreePrivacyAuthorization": the same tap also accepts WeChat's
    // own 隐私保护指引 for the mini-program (WeChat needs no handler for that part).
    async onAgree() {
      const chosen = this.data.purposes.filter((p) => p.checked).map((p) => p.id)
      const r = await this.guard(() => privacy.consent(this.data.notice, chosen))
      if (r === undefined) return
      this.setData({ done: true })
      wx.showToast({ title: '已保存', icon: 'success' })
      if (this.data.first) wx.navigateBack()
      else this.reload()
    },
    async onWithdraw(e) {
      const id = e.currentTarget.dataset.id
      const p = this.data.purposes.find((x) => x.id === id)
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '撤回授权',
          content: '撤回「' + (p ? p.title : id) + '」后,需要它的功能将不能使用,直到您再次同意。确定撤回吗?',
          confirmText: '撤回',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(() => privacy.withdraw(id))
      if (r === undefined) return
      this.reload()
    },
  },
})
