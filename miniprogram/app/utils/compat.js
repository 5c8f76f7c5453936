// A server older than API.md v1.1 answers a path it does not serve with the router's own
// 404 (code NOT_FOUND, "请求的资源不存在"), unlike a missing *thing* ("申请不存在").
// The pages fall back where the v1 contract has a way (face check without a session;
// no privacy notice to show) and say so where it has none.

function missingEndpoint(err) {
  return !!err && err.status === 404 && err.code === 'NOT_FOUND' && err.message === '请求的资源不存在'
}

module.exports = { missingEndpoint }
