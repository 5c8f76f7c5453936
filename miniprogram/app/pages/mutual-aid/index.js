// 家庭共济: the relatives I let use my 职工医保 personal-account balance, and who lets me use
// theirs (GET /mutual-aid/authorizations → {items, received}); revoke one (DELETE …/{id}).

const page = require('../../utils/page')
const api = require('../../utils/api')
const format = require('../../utils/format')
const subscribe = require('../../utils/subscribe')
const errors = require('../../utils/errors')
const idcard = require('../../utils/idcard')

Component({
  behaviors: [page],
  data: { items: [], received: [], loaded: false, subscribed: '' },
  methods: {
    onShow() {
      this.reload()
    },
    async reload() {
      const r = await this.guard(() => api.get('/mutual-aid/authorizations'))
      if (r === undefined) return
      const t = idcard.shanghaiToday()
      const today = t[0] + '-' + String(t[1]).padStart(2, '0') + '-' + String(t[2]).padStart(2, '0')
      this.setData({
        loaded: true,
        items: (r.items || []).map((a) => ({
          id: a.id,
          name: a.member.name,
          relationship: format.label(format.RELATIONSHIPS, a.relationship),
          active: a.state === 'active',
          stateText: a.state === 'active' ? '生效中' : '已解除',
          quota: a.cross_province && a.quota_fen ? format.yuan(a.quota_remaining_fen) + ' / ' + format.yuan(a.quota_fen) : '',
          since: format.date(a.created_at),
          revocableFrom: format.date(a.revocable_from),
          locked: !!a.revocable_from && a.revocable_from.slice(0, 10) > today,
        })),
        received: (r.received || []).map((a) => ({
          id: a.id,
          name: a.authorizer.name,
          relationship: format.label(format.RELATIONSHIPS, a.relationship),
          since: format.date(a.created_at),
        })),
      })
    },
    async onRevoke(e) {
      const id = e.currentTarget.dataset.id
      const a = this.data.items.find((x) => x.id === id)
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '解除共济授权',
          content: '解除后,' + (a ? a.name : '对方') + '就医时将不能再使用您的个人账户余额。确定解除吗?',
          confirmText: '解除授权',
          cancelText: '再想想',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(() => api.del('/mutual-aid/authorizations/' + id))
      if (r === undefined) return
      this.reload()
    },
    onSubscribe() {
      subscribe
        .ask(['mutual_aid_debit'])
        .then((r) => this.setData({ subscribed: r ? '已订阅共济支出通知' : '没有订阅' }))
        .catch((e) => this.setData({ error: errors.describe(e) }))
    },
  },
})
