// The behaviour every page shares: the font scale (a11y.js), one `error` shown by
// <error-panel>, a `busy` flag, and navigation from data-url.

const a11y = require('./a11y')
const errors = require('./errors')

module.exports = Behavior({
  data: { pageStyle: '', error: null, busy: false },
  lifetimes: {
    attached() {
      this.setData({ pageStyle: a11y.pageStyle() })
    },
  },
  methods: {
    // Runs fn (an API call); on failure shows its message and fix in data[key] and answers
    // undefined (a 204 answers null). Clears the old error first.
    async guard(fn, key) {
      const k = key || 'error'
      this.setData({ [k]: null, busy: true })
      try {
        return await fn()
      } catch (e) {
        if (typeof console !== 'undefined' && !(e instanceof errors.ApiError)) console.error(e)
        this.setData({ [k]: errors.describe(e) })
        return undefined
      } finally {
        this.setData({ busy: false })
      }
    },
    // bindtap="go" data-url="/pages/..." on any tappable element
    go(e) {
      const url = e.currentTarget.dataset.url
      if (url) wx.navigateTo({ url })
    },
    // <error-panel bindretry="onRetry">: pages define reload()
    onRetry() {
      if (typeof this.reload === 'function') this.reload()
    },
  },
})
