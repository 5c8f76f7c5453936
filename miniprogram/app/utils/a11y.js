// WeChat's font size setting (and 关怀模式, which sets it to about 23.8px) as a scale for our
// rpx sizes: every font-size in WXSS is calc(Nrpx * var(--fs)), N ≥ 28, and each page sets
// --fs through <page-meta page-style>. Never below 1: text only ever grows.
// WeChat's 适老化设计指南: adapt to wx.getAppBaseInfo().fontSizeScaleFactor.

function scale() {
  let info = null
  try {
    info = typeof wx.getAppBaseInfo === 'function' ? wx.getAppBaseInfo() : wx.getSystemInfoSync()
  } catch (e) {
    info = null
  }
  let f = Number(info && info.fontSizeScaleFactor)
  if (!(f > 0) && info && info.fontSizeSetting) f = Number(info.fontSizeSetting) / 17
  if (!(f > 1)) return 1
  return Math.min(f, 1.8)
}

function pageStyle() {
  const f = scale()
  return f > 1 ? '--fs: ' + f.toFixed(2) + ';' : ''
}

module.exports = { scale, pageStyle }
