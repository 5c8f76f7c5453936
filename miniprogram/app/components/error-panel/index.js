// Shows an API error the way every page must: what happened (the server's Chinese message),
// what to do (its fix), which fields are wrong, a button to where the fix is, and 重试.
Component({
  options: { styleIsolation: 'apply-shared' },
  properties: {
    error: { type: Object, value: null },
  },
  methods: {
    onRetry() {
      this.triggerEvent('retry', {})
    },
    onAction() {
      const a = this.data.error && this.data.error.action
      if (a && a.url) wx.navigateTo({ url: a.url })
    },
  },
})
