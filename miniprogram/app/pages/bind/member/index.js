// 添加家人 (step 1 of 4): who the member is (relationship, document, ID checked as typed),
// the precheck (POST /family/precheck: blocking reasons with fixes, required materials,
// face check) and the draft application (POST /family/applications).

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const idcard = require('../../../utils/idcard')
const format = require('../../../utils/format')
const errors = require('../../../utils/errors')
const drafts = require('../../../utils/drafts')

const ACTIONS = {
  BINDER_NOT_VERIFIED: { label: '去实名认证', url: '/pages/realname/index' },
}

Component({
  behaviors: [page],
  data: {
    relationships: format.RELATIONSHIP_CHOICES,
    relIndex: -1,
    idTypes: format.ID_TYPES,
    idTypeIndex: 0,
    name: '',
    idNumber: '',
    check: { state: 'empty', message: '' },
    phone: '',
    reason: '为了方便家人代办医保业务',
    result: null,
  },
  methods: {
    changed(patch) {
      this.setData(Object.assign({ result: null }, patch))
    },
    onRelationship(e) {
      this.changed({ relIndex: Number(e.detail.value) })
    },
    onName(e) {
      this.changed({ name: e.detail.value.trim() })
    },
    onIdType(e) {
      this.changed({ idTypeIndex: Number(e.detail.value) })
      this.recheck(this.data.idNumber)
    },
    onIdNumber(e) {
      this.recheck(e.detail.value)
    },
    recheck(raw) {
      const c = idcard.check(this.data.idTypes[this.data.idTypeIndex].value, raw)
      let message = c.message
      if (c.state === 'ok' && c.age !== undefined && c.age < 16) {
        message += ';未满 16 周岁:需上传出生医学证明或户口本,关系选「子女」'
      }
      this.changed({ idNumber: c.value, check: { state: c.state, message } })
    },
    onPhone(e) {
      this.changed({ phone: e.detail.value.trim() })
    },
    onReason(e) {
      this.changed({ reason: e.detail.value })
    },
    person() {
      return {
        name: this.data.name,
        id_type: this.data.idTypes[this.data.idTypeIndex].value,
        id_number: this.data.idNumber,
        relationship: this.data.relationships[this.data.relIndex].value,
      }
    },
    complete() {
      if (this.data.relIndex < 0) {
        this.setData({ error: errors.form('请先选择家人与您的关系', '点「TA 是您的」选择父母、配偶或子女。') })
        return false
      }
      if (!this.data.name || this.data.check.state !== 'ok') {
        this.setData({
          error: errors.form(
            '请先填写完整的家人姓名和证件号码',
            this.data.check.message || '姓名和证件号码要与家人证件上的完全一致。',
          ),
        })
        return false
      }
      return true
    },
    async onPrecheck() {
      if (!this.complete()) return
      const r = await this.guard(() => api.post('/family/precheck', this.person()))
      if (r === undefined) return
      this.setData({
        result: {
          ok: r.ok,
          blocking: (r.blocking || []).map((b) => Object.assign({ action: ACTIONS[b.code] || null }, b)),
          required: (r.required_materials || []).map((m) => m.label),
          requiredRaw: r.required_materials || [],
          face: !!r.face_check_required,
          review: !!r.review_required,
        },
      })
    },
    async onCreate() {
      if (!this.complete() || !this.data.result || !this.data.result.ok) return
      const body = Object.assign(this.person(), { reason: this.data.reason || undefined })
      if (this.data.phone) body.phone = this.data.phone
      const app = await this.guard(() => api.post('/family/applications', body))
      if (app === undefined) return
      drafts.save(app.id, {
        required: this.data.result.requiredRaw,
        face: this.data.result.face,
        review: this.data.result.review,
      })
      wx.redirectTo({ url: '/pages/bind/materials/index?id=' + app.id })
    },
  },
})
