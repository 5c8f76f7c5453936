// Promise wrappers around callback-style wx APIs.

function call(name, options) {
  return new Promise((resolve, reject) => {
    wx[name](Object.assign({}, options || {}, { success: resolve, fail: reject }))
  })
}

// Like call, but a user who cancels (closes a picker) answers null instead of an error.
function pick(name, options) {
  return call(name, options).catch((e) => {
    if (e && /cancel/i.test(e.errMsg || '')) return null
    throw e
  })
}

function canUse(name) {
  return typeof wx !== 'undefined' && typeof wx[name] === 'function'
}

module.exports = { call, pick, canUse }
