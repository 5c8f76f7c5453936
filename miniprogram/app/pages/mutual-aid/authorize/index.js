// 新增共济授权: the versioned 共济绑定告知书 in full (GET /mutual-aid/notice), read to its end and
// accepted, then the relative (POST /mutual-aid/authorizations with notice_version and
// notice_sha256 of the text shown; quota_fen only for a cross-province relative).

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const idcard = require('../../../utils/idcard')
const format = require('../../../utils/format')
const errors = require('../../../utils/errors')

Component({
  behaviors: [page],
  data: {
    notice: null,
    readToEnd: false,
    agreed: false,
    relationships: format.MUTUAL_AID_RELATIONSHIPS,
    relIndex: -1,
    idTypes: format.ID_TYPES,
    idTypeIndex: 0,
    name: '',
    idNumber: '',
    check: { state: 'empty', message: '' },
    quota: '',
    done: null,
  },
  methods: {
    onLoad() {
      this.reload()
    },
    async reload() {
      const n = await this.guard(() => api.get('/mutual-aid/notice'))
      if (n === undefined) return
      // a text shorter than its box has no end to scroll to: measure once it is rendered
      this.setData({ notice: n }, () => this.measure('#notice-text'))
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
    onAgree(e) {
      this.setData({ agreed: (e.detail.value || []).indexOf('agree') >= 0 })
    },
    onRelationship(e) {
      this.setData({ relIndex: Number(e.detail.value) })
    },
    onName(e) {
      this.setData({ name: e.detail.value.trim() })
    },
    onIdType(e) {
      this.setData({ idTypeIndex: Number(e.detail.value) })
      this.recheck(this.data.idNumber)
    },
    onIdNumber(e) {
      this.recheck(e.detail.value)
    },
    recheck(raw) {
      const c = idcard.check(this.data.idTypes[this.data.idTypeIndex].value, raw)
      this.setData({ idNumber: c.value, check: { state: c.state, message: c.message } })
    },
    onQuota(e) {
      this.setData({ quota: e.detail.value.trim() })
    },
    async onSubmit() {
      if (!this.data.readToEnd || !this.data.agreed) {
        this.setData({ error: errors.form('请先读完并同意共济绑定告知书', '把告知书滑到最后,勾选「我已阅读并同意」。') })
        return
      }
      if (this.data.relIndex < 0 || !this.data.name || this.data.check.state !== 'ok') {
        this.setData({
          error: errors.form('请先填写完整的家人信息', this.data.check.message || '选择关系,填写与证件一致的姓名和证件号码。'),
        })
        return
      }
      const body = {
        name: this.data.name,
        id_type: this.data.idTypes[this.data.idTypeIndex].value,
        id_number: this.data.idNumber,
        relationship: this.data.relationships[this.data.relIndex].value,
        notice_version: this.data.notice.version,
        notice_sha256: this.data.notice.sha256,
      }
      if (this.data.quota) {
        const fen = format.fenFromYuan(this.data.quota)
        if (!fen) {
          this.setData({ error: errors.form('共济额度填写不正确', '请填写金额(元),最多两位小数,例如 500 或 500.50。') })
          return
        }
        body.quota_fen = fen
      }
      const a = await this.guard(() => api.post('/mutual-aid/authorizations', body))
      if (a === undefined) return
      this.setData({ done: { name: a.member ? a.member.name : this.data.name } })
    },
    onBack() {
      wx.navigateBack()
    },
  },
})
