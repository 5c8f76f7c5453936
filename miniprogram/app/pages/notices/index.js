// 消息通知 (opened from the official account's and subscribe messages as
// pages/notices/index?id=<notice>): my notices with their delivery state (pending / sent /
// delivered / failed / undeliverable + reason), the one opened from a message first and
// expanded; subscribing to the next ones.

const page = require('../../utils/page')
const api = require('../../utils/api')
const format = require('../../utils/format')
const subscribe = require('../../utils/subscribe')
const errors = require('../../utils/errors')

function details(n) {
  const d = n.data || {}
  const out = []
  if (d.member_name) out.push('家人:' + d.member_name)
  if (d.institution) out.push('机构:' + d.institution)
  if (d.setl_time) out.push('时间:' + format.datetime(d.setl_time))
  if (d.med_type) out.push('类型:' + format.label(format.MED_TYPES, d.med_type))
  if (d.medfee_fen !== undefined) out.push('医疗费:' + format.yuan(d.medfee_fen))
  if (d.psn_part_fen !== undefined) out.push('个人负担:' + format.yuan(d.psn_part_fen))
  if (d.acct_pay_fen !== undefined) out.push('个人账户支付:' + format.yuan(d.acct_pay_fen))
  if (d.mulaid_fen) out.push('共济支付:' + format.yuan(d.mulaid_fen))
  if (d.amount_fen !== undefined) out.push('金额:' + format.yuan(d.amount_fen))
  if (d.cash_fen !== undefined) out.push('现金支付:' + format.yuan(d.cash_fen))
  if (d.result_text || d.result) out.push('结果:' + (d.result_text || d.result))
  if (d.reason) out.push('原因:' + d.reason)
  return out
}

function item(n, openId) {
  const st = format.state(format.NOTICE_STATES, n.state)
  return {
    id: n.id,
    title: n.title || format.label(format.NOTICE_KINDS, n.kind),
    kind: format.label(format.NOTICE_KINDS, n.kind),
    stateText: st.text,
    mark: st.mark,
    ok: n.state === 'delivered' || n.state === 'sent',
    bad: n.state === 'failed' || n.state === 'undeliverable',
    reason: n.reason ? n.reason + (n.errcode ? '(' + n.errcode + ')' : '') : '',
    created: format.datetime(n.created_at),
    details: details(n),
    open: n.id === openId,
  }
}

Component({
  behaviors: [page],
  data: { openId: '', items: [], loaded: false, subscribed: '' },
  methods: {
    onLoad(query) {
      this.setData({ openId: (query && query.id) || '' })
    },
    onShow() {
      this.reload()
    },
    onPullDownRefresh() {
      this.reload().then(() => wx.stopPullDownRefresh())
    },
    async reload() {
      const r = await this.guard(() => api.get('/notices'))
      if (r === undefined) return
      const items = (r.items || []).map((n) => item(n, this.data.openId))
      // the notice a message opened comes first
      items.sort((a, b) => (b.open ? 1 : 0) - (a.open ? 1 : 0))
      this.setData({ items, loaded: true })
    },
    onToggle(e) {
      const id = e.currentTarget.dataset.id
      this.setData({ items: this.data.items.map((n) => (n.id === id ? Object.assign({}, n, { open: !n.open }) : n)) })
    },
    // a tap: WeChat asks the user for subscribe messages only here
    onSubscribe() {
      subscribe
        .ask(['family_settlement', 'reversal', 'member_settlement'])
        .then((r) => this.setData({ subscribed: r ? '已订阅,下次结算会通知您' : '没有订阅' }))
        .catch((e) => this.setData({ error: errors.describe(e) }))
    },
  },
})
