// 亲情医保 reference mini-program. Pages log in on demand (utils/api.js): nothing to do at launch.
// WeChat's own 隐私保护指引 popup: our privacy page's agree button has
// open-type="agreePrivacyAuthorization", so agreeing there also satisfies WeChat's check.
App({
  onLaunch() {},
})
