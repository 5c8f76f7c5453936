// Subscribe messages: WeChat only asks the user inside a tap handler, so a page calls ask()
// first thing in its bindtap handler; the answer is reported to POST /notices/subscriptions
// (one grant per "accept"; "ban" clears them).

const config = require('../config')
const api = require('./api')

function ids(kinds) {
  const t = config.subscribeTemplates || {}
  return kinds
    .map((k) => t[k])
    .filter(Boolean)
    .slice(0, 3)
}

function ask(kinds) {
  const tmplIds = ids(kinds)
  if (!tmplIds.length || typeof wx.requestSubscribeMessage !== 'function') return Promise.resolve(null)
  return new Promise((resolve) => {
    wx.requestSubscribeMessage({
      tmplIds,
      success: resolve,
      fail: () => resolve(null), // the user closed it or the template is not set up: nothing to report
    })
  }).then((res) => {
    if (!res) return null
    const results = {}
    tmplIds.forEach((id) => {
      if (typeof res[id] === 'string') results[id] = res[id]
    })
    if (!Object.keys(results).length) return null
    return api.post('/notices/subscriptions', { results }).then(() => results)
  })
}

module.exports = { ask, ids }
