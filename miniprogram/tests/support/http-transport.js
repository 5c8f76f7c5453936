// The journey tests' transport: the pages' wx.request / wx.uploadFile as real HTTP requests
// to the server the test started (JSON bodies; multipart for uploads, file read from disk).

const http = require('http')
const fs = require('fs')
const path = require('path')

function send(url, method, headers, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8')
          let data = raw
          if (/json/.test(res.headers['content-type'] || '') && raw) data = JSON.parse(raw)
          const header = {}
          Object.keys(res.headers).forEach((k) => {
            header[k.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())] = res.headers[k]
          })
          resolve({ statusCode: res.statusCode, data, header })
        })
      },
    )
    req.on('error', reject)
    if (body) req.write(body)
    req.end()
  })
}

function request(req) {
  const headers = Object.assign({}, req.header)
  let body = null
  if (req.data !== undefined && req.method !== 'GET') {
    body = Buffer.from(typeof req.data === 'string' ? req.data : JSON.stringify(req.data))
    headers['Content-Length'] = body.length
  }
  return send(req.url, req.method, headers, body)
}

function upload(req) {
  const boundary = '----qqminiprogram' + Date.now()
  const parts = []
  Object.keys(req.formData || {}).forEach((k) => {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${req.formData[k]}\r\n`))
  })
  const file = fs.readFileSync(req.filePath)
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${req.name}"; filename="${path.basename(req.filePath)}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
  )
  parts.push(file, Buffer.from(`\r\n--${boundary}--\r\n`))
  const body = Buffer.concat(parts)
  const headers = Object.assign({}, req.header, {
    'Content-Type': 'multipart/form-data; boundary=' + boundary,
    'Content-Length': body.length,
  })
  return send(req.url, 'POST', headers, body)
}

module.exports = { request, upload, send }
