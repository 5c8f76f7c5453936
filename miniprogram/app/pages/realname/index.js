// 本人实名认证: name + ID (checked as typed), then 人脸核身 (POST /face/sessions →
// wx.startFacialRecognitionVerify) and POST /me/realname with the verify result as face_token.

const page = require('../../utils/page')
const api = require('../../utils/api')
const face = require('../../utils/face')
const idcard = require('../../utils/idcard')
const format = require('../../utils/format')
const errors = require('../../utils/errors')

Component({
  behaviors: [page],
  data: {
    idTypes: format.ID_TYPES,
    idTypeIndex: 0,
    name: '',
    idNumber: '',
    check: { state: 'empty', message: '' },
    verified: null,
  },
  methods: {
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
      const type = this.data.idTypes[this.data.idTypeIndex].value
      const c = idcard.check(type, raw)
      this.setData({ idNumber: c.value, check: { state: c.state, message: c.message } })
    },
    async onStart() {
      const idType = this.data.idTypes[this.data.idTypeIndex].value
      if (!this.data.name || this.data.check.state !== 'ok') {
        this.setData({
          error: errors.form(
            '请先填写完整的姓名和证件号码',
            this.data.check.message || '姓名和证件号码要与证件上的完全一致。',
          ),
        })
        return
      }
      const person = { name: this.data.name, id_type: idType, id_number: this.data.idNumber }
      const me = await this.guard(async () => {
        const token = await face.verify(Object.assign({ purpose: 'realname' }, person))
        return api.post('/me/realname', Object.assign({}, person, { face_token: token }))
      })
      if (me === undefined) return
      this.setData({ verified: me })
    },
    onDone() {
      wx.navigateBack()
    },
  },
})
