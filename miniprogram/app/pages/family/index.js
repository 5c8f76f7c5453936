// 我的家人: the members bound to my 亲情账户 (GET /family/members), each with its 医保码 and
// details one tap away.

const page = require('../../utils/page')
const api = require('../../utils/api')
const format = require('../../utils/format')

Component({
  behaviors: [page],
  data: { items: [], loaded: false },
  methods: {
    onShow() {
      this.reload()
    },
    onPullDownRefresh() {
      this.reload().then(() => wx.stopPullDownRefresh())
    },
    async reload() {
      const r = await this.guard(() => api.get('/family/members'))
      if (r === undefined) return
      this.setData({
        loaded: true,
        items: (r.items || []).map((m) => ({
          id: m.id,
          name: m.member.name,
          idNumber: m.member.id_number,
          relationship: m.relationship_label || format.label(format.RELATIONSHIPS, m.relationship),
          insurance: m.insurance ? format.label(format.INSURANCE_TYPES, m.insurance.insurance_type) : '',
          suspended: !!m.insurance && m.insurance.status !== 'active',
          bound: format.date(m.bound_at),
        })),
      })
    },
  },
})
