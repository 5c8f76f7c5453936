// 上传材料 (step 2 of 4): photos or PDFs of 户口本 / 身份证 / 出生医学证明, uploaded with
// wx.uploadFile (multipart kind + file) with progress; a material can be removed before
// submitting (DELETE …/materials/{id}, API.md v1.1).

const page = require('../../../utils/page')
const api = require('../../../utils/api')
const format = require('../../../utils/format')
const drafts = require('../../../utils/drafts')
const compat = require('../../../utils/compat')
const errors = require('../../../utils/errors')
const wxp = require('../../../utils/wxp')

// What the requirement list says when the precheck's answer is not on this phone.
const GENERIC = [
  { kinds: ['household_register', 'id_card_front+id_card_back'], label: '成年家人:户口本,或身份证正反面' },
  { kinds: ['birth_certificate', 'household_register'], label: '未满 16 周岁:出生医学证明或户口本' },
]

function met(group, kinds) {
  return group.kinds.some((alt) => alt.split('+').every((k) => kinds.indexOf(k) >= 0))
}

function kb(size) {
  return size >= 1024 * 1024 ? (size / 1024 / 1024).toFixed(1) + ' MB' : Math.max(1, Math.round(size / 1024)) + ' KB'
}

Component({
  behaviors: [page],
  data: {
    id: '',
    app: null,
    kinds: format.MATERIAL_KINDS,
    kindIndex: 0,
    materials: [],
    requirements: [],
    generic: false,
    uploading: null,
  },
  methods: {
    onLoad(query) {
      this.setData({ id: query.id })
      const d = drafts.get(query.id)
      const req = d && d.required && d.required.length ? d.required : GENERIC
      const first = req[0].kinds[0].split('+')[0]
      const idx = this.data.kinds.findIndex((k) => k.value === first)
      this.setData({ requirements: req, generic: !(d && d.required), kindIndex: idx >= 0 ? idx : 0 })
    },
    onShow() {
      this.reload()
    },
    async reload() {
      const app = await this.guard(() => api.get('/family/applications/' + this.data.id))
      if (app === undefined) return
      this.show(app.materials || [], app)
    },
    show(materials, app) {
      const kinds = materials.map((m) => m.kind)
      this.setData({
        app: app || this.data.app,
        materials: materials.map((m) => Object.assign({}, m, { sizeText: kb(m.size || 0), label: m.label || format.choiceLabel(format.MATERIAL_KINDS, m.kind) })),
        requirements: this.data.requirements.map((g) => Object.assign({}, g, { met: met(g, kinds) })),
      })
    },
    onKind(e) {
      this.setData({ kindIndex: Number(e.detail.value) })
    },
    async onChoosePhoto() {
      const r = await this.guard(() =>
        wxp.pick('chooseMedia', { count: 1, mediaType: ['image'], sourceType: ['camera', 'album'], sizeType: ['compressed'] }),
      )
      if (r) await this.upload(r.tempFiles[0])
    },
    async onChoosePdf() {
      const r = await this.guard(() => wxp.pick('chooseMessageFile', { count: 1, type: 'file', extension: ['pdf'] }))
      if (r) await this.upload({ tempFilePath: r.tempFiles[0].path || r.tempFiles[0].tempFilePath, size: r.tempFiles[0].size })
    },
    async upload(file) {
      const kind = this.data.kinds[this.data.kindIndex]
      this.setData({ uploading: { label: kind.label, progress: 0 } })
      const m = await this.guard(() =>
        api.upload(
          '/family/applications/' + this.data.id + '/materials',
          { filePath: file.tempFilePath, name: 'file', formData: { kind: kind.value } },
          (progress) => this.setData({ 'uploading.progress': progress }),
        ),
      )
      this.setData({ uploading: null })
      if (m) this.show(this.data.materials.concat([m]))
    },
    async onRemove(e) {
      const mid = e.currentTarget.dataset.id
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '删除这份材料',
          content: '删除后可以重新上传。确定删除吗?',
          confirmText: '删除',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(async () => {
        try {
          return await api.del('/family/applications/' + this.data.id + '/materials/' + mid)
        } catch (err) {
          if (!compat.missingEndpoint(err)) throw err
          throw new errors.ApiError({
            status: 404,
            code: 'NOT_SUPPORTED',
            message: '当前服务器还不能删除已上传的材料',
            fix: '多传的材料不影响办理;如需更正,请在「办理记录」里重新办理一次。',
          })
        }
      })
      if (r === undefined) return
      this.show(this.data.materials.filter((m) => m.id !== mid))
    },
    onNext() {
      wx.navigateTo({ url: '/pages/bind/commitment/index?id=' + this.data.id })
    },
  },
})
