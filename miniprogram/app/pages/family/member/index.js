// One member: insurance status, balance (GET …/summary), links to the 医保码 and the
// settlements, and unbind (DELETE /family/members/{id}).

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const format = require('../../../utils/format')

Component({
  behaviors: [page],
  data: { id: '', member: null, unbound: false },
  methods: {
    onLoad(query) {
      this.setData({ id: query.id })
    },
    onShow() {
      this.reload()
    },
    async reload() {
      const [list, summary] = (await this.guard(() =>
        Promise.all([api.get('/family/members'), api.get('/family/members/' + this.data.id + '/summary')]),
      )) || [null, null]
      if (!list) return
      const m = (list.items || []).find((x) => x.id === this.data.id)
      if (!m) {
        this.setData({ member: null, unbound: true })
        return
      }
      const ins = summary ? summary.insurance : m.insurance
      this.setData({
        member: {
          name: m.member.name,
          idNumber: m.member.id_number,
          relationship: m.relationship_label || format.label(format.RELATIONSHIPS, m.relationship),
          insurance: ins ? format.label(format.INSURANCE_TYPES, ins.insurance_type) : '',
          status: ins && ins.status === 'active' ? '正常参保' : '参保状态异常(暂停)',
          statusOk: !!ins && ins.status === 'active',
          activated: !!ins && ins.voucher_activated,
          balance: summary && summary.balance !== null && summary.balance !== undefined ? format.yuan(summary.balance) : '无个人账户',
          year: summary ? summary.year : '',
          spent: summary ? format.yuan(summary.medfee_sumamt) : '—',
          count: summary ? summary.count : 0,
          bound: format.date(m.bound_at),
        },
      })
    },
    async onUnbind() {
      const name = this.data.member ? this.data.member.name : ''
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '解除绑定',
          content:
            '解除后将不能再为' + name + '出示医保码、查看就医记录,' + name +
            '会收到通知。需要时可以重新绑定(按当地规定,每位家人每月最多被 2 人绑定)。确定解除吗?',
          confirmText: '解除绑定',
          cancelText: '再想想',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(() => api.del('/family/members/' + this.data.id))
      if (r === undefined) return
      this.setData({ unbound: true, member: null })
      wx.showToast({ title: '已解除绑定', icon: 'success' })
    },
    onBack() {
      wx.navigateBack()
    },
  },
})
