// 我的数据与隐私 (API.md v1.1): consents (the privacy page), a copy of everything held about
// me (GET /me/export, saved as a JSON file to send to a chat), logging out, and deleting the
// account (DELETE /me → 202 with what happens to bindings and records).

const page = require('../../utils/page')
const api = require('../../utils/api')
const session = require('../../utils/session')
const compat = require('../../utils/compat')
const errors = require('../../utils/errors')

const SECTION_LABELS = {
  user: '账户',
  me: '账户',
  profile: '账户',
  consents: '隐私授权',
  applications: '绑定申请',
  bindings: '亲情账户绑定',
  members: '我绑定的家人',
  binders: '绑定我的人',
  materials: '上传的材料',
  commitments: '签署的承诺书',
  authorizations: '共济授权',
  mutual_aid: '家庭共济',
  notices: '消息通知',
  subscriptions: '消息订阅',
  settlements: '结算记录',
}

function notServed(err, what) {
  if (!compat.missingEndpoint(err)) return err
  return new errors.ApiError({
    status: 404,
    code: 'NOT_SUPPORTED',
    message: '当前服务器还不支持' + what,
    fix: '请到当地医保经办窗口办理,或拨打 12393 咨询。',
  })
}

function yyyymmdd() {
  const d = new Date(Date.now() + 8 * 3600 * 1000)
  return d.toISOString().slice(0, 10).replace(/-/g, '')
}

Component({
  behaviors: [page],
  data: { exported: null, deleted: null, loggedOut: false },
  methods: {
    async onExport() {
      const data = await this.guard(async () => {
        try {
          return await api.get('/me/export')
        } catch (e) {
          throw notServed(e, '导出个人数据')
        }
      })
      if (data === undefined) return
      const text = JSON.stringify(data, null, 2)
      const filePath = wx.env.USER_DATA_PATH + '/my-data-' + yyyymmdd() + '.json'
      const saved = await new Promise((resolve) =>
        wx.getFileSystemManager().writeFile({ filePath, data: text, encoding: 'utf8', success: () => resolve(true), fail: () => resolve(false) }),
      )
      this.exportText = text
      this.setData({
        exported: {
          filePath: saved ? filePath : '',
          size: Math.max(1, Math.round(text.length / 1024)) + ' KB',
          sections: Object.keys(data).map((k) => ({
            key: k,
            label: SECTION_LABELS[k] || k,
            count: Array.isArray(data[k]) ? data[k].length + ' 条' : '',
          })),
        },
      })
    },
    // taps: WeChat only opens the chat picker / clipboard from a tap
    onShareFile() {
      if (!this.data.exported || !this.data.exported.filePath) return
      wx.shareFileMessage({ filePath: this.data.exported.filePath, fileName: '我的数据-' + yyyymmdd() + '.json' })
    },
    onCopy() {
      if (this.exportText) wx.setClipboardData({ data: this.exportText })
    },
    async onLogout() {
      await api.logout()
      this.setData({ loggedOut: true })
    },
    async onDelete() {
      const ok = await new Promise((resolve) =>
        wx.showModal({
          title: '注销账户',
          content:
            '注销后:您绑定的家人和绑定您的关系都会解除,通知停止,您的个人信息会被删除或匿名化;法律要求保存的结算记录会去标识后保留。此操作不能撤销。确定注销吗?',
          confirmText: '确定注销',
          cancelText: '不注销',
          success: (r) => resolve(r.confirm),
          fail: () => resolve(false),
        }),
      )
      if (!ok) return
      const r = await this.guard(async () => {
        try {
          return await api.del('/me')
        } catch (e) {
          throw notServed(e, '注销账户')
        }
      })
      if (r === undefined) return
      session.clear()
      wx.removeStorageSync('qq.privacy')
      wx.removeStorageSync('qq.drafts')
      const lines = []
      Object.keys(r || {}).forEach((k) => {
        const v = r[k]
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') lines.push({ key: k, text: k + ':' + v })
        else if (Array.isArray(v)) lines.push({ key: k, text: k + ':' + v.length + ' 项' })
      })
      this.setData({ deleted: { message: (r && r.message) || '账户已注销', lines } })
    },
  },
})
