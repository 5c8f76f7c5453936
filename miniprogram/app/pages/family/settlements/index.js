// A member's settlements of one year (GET …/settlements?year=&cursor=&limit=) and the year's
// summary (GET …/summary): who paid how much (统筹 / 个人账户 / 共济 / 现金) and a month-by-month
// bar chart. Bars are drawn as views with the amount written beside each, so the chart reads
// without colour and a screen reader reads it as text.

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const format = require('../../../utils/format')
const idcard = require('../../../utils/idcard')

// The first page goes without limit/cursor (the server's default size; a v1 server knows
// neither), later pages follow next_cursor.
const LIMIT = 50

function row(s) {
  return {
    id: s.setl_id,
    institution: s.institution,
    medType: format.label(format.MED_TYPES, s.med_type),
    time: format.datetime(s.setl_time),
    month: Number((/^\d{4}-(\d{2})/.exec(s.setl_time || '') || [0, 0])[1]),
    total: format.yuan(s.medfee_sumamt),
    totalFen: s.medfee_sumamt || 0,
    fund: format.yuan(s.hifp_pay),
    acct: format.yuan(s.acct_pay),
    mulaid: format.yuan(s.acct_mulaid_pay),
    cash: format.yuan(s.psn_cash_pay),
    reversed: s.state === 'reversed',
  }
}

function bars(parts) {
  const max = Math.max.apply(null, parts.map((p) => p.fen).concat([1]))
  return parts.map((p) => Object.assign({}, p, { text: format.yuan(p.fen), width: Math.round((p.fen / max) * 100) }))
}

Component({
  behaviors: [page],
  data: { id: '', year: 0, thisYear: 0, items: [], total: 0, cursor: null, summary: null, split: [], months: [], loaded: false },
  methods: {
    onLoad(query) {
      const thisYear = idcard.shanghaiToday()[0]
      this.setData({ id: query.id, thisYear, year: Number(query.year) || thisYear })
      this.reload()
    },
    async reload() {
      const base = '/family/members/' + this.data.id
      const r = await this.guard(() =>
        Promise.all([api.get(base + '/settlements', { year: this.data.year }), api.get(base + '/summary', { year: this.data.year })]),
      )
      if (r === undefined) return
      const [list, summary] = r
      this.setData({ items: (list.items || []).map(row), total: list.total || 0, cursor: list.next_cursor || null, loaded: true })
      this.summarise(summary)
    },
    summarise(s) {
      const sameYear = !s || !s.year || Number(s.year) === this.data.year
      const split = sameYear && s
        ? bars([
            { key: 'fund', label: '医保统筹支付', fen: s.hifp_pay || 0 },
            { key: 'acct', label: '个人账户支付', fen: s.acct_pay || 0 },
            { key: 'mulaid', label: '家庭共济支付', fen: s.acct_mulaid_pay || 0 },
            { key: 'cash', label: '现金支付', fen: s.psn_cash_pay || 0 },
          ])
        : []
      const byMonth = {}
      this.data.items.filter((i) => !i.reversed).forEach((i) => (byMonth[i.month] = (byMonth[i.month] || 0) + i.totalFen))
      const months = bars(
        Object.keys(byMonth)
          .map(Number)
          .sort((a, b) => a - b)
          .map((m) => ({ key: 'm' + m, label: m + '月', fen: byMonth[m] })),
      )
      this.setData({
        summary: s
          ? {
              count: sameYear ? s.count : this.data.total,
              medfee: format.yuan(sameYear ? s.medfee_sumamt : 0),
              balance: s.balance === null || s.balance === undefined ? '无个人账户' : format.yuan(s.balance),
            }
          : null,
        split,
        months,
      })
    },
    async onMore() {
      if (!this.data.cursor) return
      const r = await this.guard(() =>
        api.get('/family/members/' + this.data.id + '/settlements', { year: this.data.year, cursor: this.data.cursor, limit: LIMIT }),
      )
      if (r === undefined) return
      this.setData({ items: this.data.items.concat((r.items || []).map(row)), cursor: r.next_cursor || null })
    },
    onPrevYear() {
      this.setData({ year: this.data.year - 1 })
      this.reload()
    },
    onNextYear() {
      if (this.data.year >= this.data.thisYear) return
      this.setData({ year: this.data.year + 1 })
      this.reload()
    },
  },
})
