// 提交 (step 4 of 4) and the result. Submit with the member's face check (POST /face/sessions
// {purpose: member} → wx.startFacialRecognitionVerify → submit {member_face_token}), or the
// documents way (submit {verification: "documents"} → a reviewer decides). The answer:
// active (bound; member_activated when the binding activated the member's 医保电子凭证),
// pending_review, needs_action (the reason, its fix and a one-tap retry) or failed (final).

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const face = require('../../../utils/face')
const format = require('../../../utils/format')
const drafts = require('../../../utils/drafts')
const subscribe = require('../../../utils/subscribe')
const errors = require('../../../utils/errors')

const OPEN = ['draft', 'materials', 'commitment_signed']
const FIXABLE = ['needs_action', 'correction_requested']

// Where the fix of a failure code is, beside submitting again.
function fixStep(code, id) {
  if (['MATERIALS_MISSING', 'MINOR_DOCUMENTS_MISSING', 'MATERIALS_REJECTED', 'CORRECTION_REQUESTED'].indexOf(code) >= 0) {
    return { label: '补传材料', url: '/pages/bind/materials/index?id=' + id }
  }
  if (code === 'COMMITMENT_REQUIRED' || code === 'COMMITMENT_OUTDATED') {
    return { label: '重新签署承诺书', url: '/pages/bind/commitment/index?id=' + id }
  }
  if (code === 'BINDER_NOT_VERIFIED') return { label: '去实名认证', url: '/pages/realname/index' }
  return null
}

Component({
  behaviors: [page],
  data: { id: '', app: null, view: null, faceRequired: true, submitted: false, subscribed: null },
  methods: {
    onLoad(query) {
      this.setData({ id: query.id })
      const d = drafts.get(query.id)
      if (d && d.face === false) this.setData({ faceRequired: false })
    },
    onShow() {
      this.reload()
    },
    async reload() {
      const app = await this.guard(() => api.get('/family/applications/' + this.data.id))
      if (app !== undefined) this.show(app)
    },
    show(app) {
      const st = format.state(format.APPLICATION_STATES, app.state)
      const failure = app.failure || null
      // a reviewer's correction request is fixed by uploading, whatever its reason code
      const code = app.state === 'correction_requested' ? 'CORRECTION_REQUESTED' : failure ? failure.code : null
      this.setData({
        app,
        view: {
          state: app.state,
          stateText: st.text,
          mark: st.mark,
          member: app.member ? app.member.name : '',
          open: OPEN.indexOf(app.state) >= 0,
          fixable: FIXABLE.indexOf(app.state) >= 0,
          final: app.state === 'failed',
          active: app.state === 'active',
          review: app.state === 'pending_review',
          activated: !!app.member_activated,
          failure,
          step: code ? fixStep(code, app.id) : null,
          bindingId: app.binding_id || null,
        },
      })
    },
    // one submit; a refusal (409 with the application's id) is shown from the application
    async submit(body) {
      let refused = null
      const r = await this.guard(async () => {
        try {
          return await api.post('/family/applications/' + this.data.id + '/submit', body)
        } catch (e) {
          if (e instanceof errors.ApiError && e.status === 409 && e.detail && e.detail.application_id) {
            refused = e
            return null
          }
          throw e
        }
      })
      if (r === undefined) return
      this.setData({ submitted: true })
      if (refused) await this.reload()
      else this.show(r)
    },
    async onSubmitFace() {
      const token = await this.guard(() => face.verify({ purpose: 'member', application_id: this.data.id }))
      if (token === undefined) return
      await this.submit({ member_face_token: token })
    },
    onSubmitDocuments() {
      return this.submit({ verification: 'documents' })
    },
    onSubmitPlain() {
      return this.submit({})
    },
    async onCancel() {
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '取消这次申请',
          content: '取消后已上传的材料和签名不再使用,需要时可以重新办理。确定取消吗?',
          confirmText: '取消申请',
          cancelText: '不取消',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(() => api.del('/family/applications/' + this.data.id))
      if (r === undefined) return
      drafts.forget(this.data.id)
      wx.reLaunch({ url: '/pages/index/index' })
    },
    // a tap: WeChat lets the mini-program ask for subscribe messages only here
    onSubscribe() {
      const kinds = this.data.view && this.data.view.review ? ['binding_result'] : ['family_settlement', 'reversal']
      subscribe
        .ask(kinds)
        .then((r) => this.setData({ subscribed: r ? '已订阅通知' : '没有订阅(可在「消息通知」里再订阅)' }))
        .catch((e) => this.setData({ error: errors.describe(e) }))
    },
    onHome() {
      wx.reLaunch({ url: '/pages/index/index' })
    },
  },
})
