// Promise wrappers around callback-style wx APIs.

function call(name, options) {
  return new Promise((resolve, reject) => {
    wx[name](Object.assign({}, options || {}, { success: resolve, fail: reject }))
  })
}

function canUse(name) {
  return typeof wx !== 'undefined' && typeof wx[name] === 'function'
}

module.exports = { call, canUse }
