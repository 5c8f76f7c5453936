// 办理记录: my applications, newest first, a page at a time (GET /family/applications
// ?cursor=&limit=, API.md v1.1; a v1 server answers them all at once without next_cursor).
// Each opens the step it is waiting for.

const page = require('../../utils/page')
const api = require('../../utils/api')
const format = require('../../utils/format')

// The first page goes without limit/cursor (the server's default size; a v1 server knows
// neither), later pages follow next_cursor.
const LIMIT = 20

function target(a) {
  if (a.state === 'draft' || a.state === 'materials') return '/pages/bind/materials/index?id=' + a.id
  return '/pages/bind/submit/index?id=' + a.id
}

function item(a) {
  const st = format.state(format.APPLICATION_STATES, a.state)
  return {
    id: a.id,
    url: target(a),
    member: a.member ? a.member.name : '',
    relationship: a.relationship_label || format.label(format.RELATIONSHIPS, a.relationship),
    stateText: st.text,
    mark: st.mark,
    attention: a.state === 'needs_action' || a.state === 'correction_requested',
    failure: a.failure ? a.failure.message : '',
    created: format.datetime(a.created_at),
  }
}

Component({
  behaviors: [page],
  data: { items: [], cursor: null, loaded: false },
  methods: {
    onShow() {
      this.reload()
    },
    onPullDownRefresh() {
      this.reload().then(() => wx.stopPullDownRefresh())
    },
    async reload() {
      const r = await this.guard(() => api.get('/family/applications'))
      if (r === undefined) return
      this.setData({ items: (r.items || []).map(item), cursor: r.next_cursor || null, loaded: true })
    },
    async onMore() {
      if (!this.data.cursor) return
      const r = await this.guard(() => api.get('/family/applications', { limit: LIMIT, cursor: this.data.cursor }))
      if (r === undefined) return
      this.setData({ items: this.data.items.concat((r.items || []).map(item)), cursor: r.next_cursor || null })
    },
    onReachBottom() {
      this.onMore()
    },
  },
})
