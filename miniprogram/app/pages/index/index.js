// 首页: who I am (real-name state), my family at a glance (a 医保码 one tap away), and every
// other page. First use: the privacy notice comes before anything else.

const page = require('../../utils/page')
const api = require('../../utils/api')
const privacy = require('../../utils/privacy')
const format = require('../../utils/format')

const MENU = [
  { url: '/pages/bind/member/index', title: '添加家人', hint: '为父母、配偶、子女开通亲情账户' },
  { url: '/pages/family/index', title: '我的家人', hint: '出示医保码、看就医记录、解除绑定' },
  { url: '/pages/applications/index', title: '办理记录', hint: '绑定申请进度,需要处理的在这里' },
  { url: '/pages/binders/index', title: '谁绑定了我', hint: '哪些家人把我加进了亲情账户' },
  { url: '/pages/mutual-aid/index', title: '家庭共济', hint: '授权家人使用我的个人账户余额' },
  { url: '/pages/notices/index', title: '消息通知', hint: '结算通知和发送状态' },
  { url: '/pages/me/index', title: '我的数据与隐私', hint: '授权管理、导出数据、注销账户' },
]

Component({
  behaviors: [page],
  data: { me: null, members: [], menu: MENU, loaded: false },
  methods: {
    onShow() {
      this.reload()
    },
    onPullDownRefresh() {
      this.reload().then(() => wx.stopPullDownRefresh())
    },
    async reload() {
      const p = await this.guard(() => privacy.status())
      if (p === undefined) return
      if (p.served && !p.accepted) {
        wx.navigateTo({ url: '/pages/privacy/index?first=1' })
        return
      }
      const me = await this.guard(() => api.get('/me'))
      if (me === undefined) return
      let members = []
      if (me.realname_verified) {
        const list = await this.guard(() => api.get('/family/members'))
        if (list === undefined) return
        members = (list.items || []).map((m) => ({
          id: m.id,
          name: m.member.name,
          relationship: m.relationship_label || format.label(format.RELATIONSHIPS, m.relationship),
        }))
      }
      this.setData({
        loaded: true,
        me: Object.assign({}, me, {
          insuranceText: me.insurance ? format.label(format.INSURANCE_TYPES, me.insurance.insurance_type) : '',
        }),
        members,
      })
    },
  },
})
