// A fake `wx` for page tests: every API the pages use, recorded, with answers a test can
// set. wx.request / wx.uploadFile go to a transport: the route table of fake-server.js in
// unit tests, the real server over HTTP (http-transport.js) in journey tests.
// settle() waits until no request is in flight and the pages' promise chains have run.

const realSetTimeout = global.setTimeout

function tick() {
  return new Promise((r) => realSetTimeout(r, 0))
}

function clone(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v))
}

function installWx({ transport, user = 'alice' }) {
  const w = global.wx
  const fake = {
    user,
    transport,
    storage: new Map(),
    files: new Map(),
    nav: [],
    modals: [],
    modalAnswers: [],
    toasts: [],
    requests: [],
    faceCalls: [],
    faceResults: [],
    media: [],
    subscribeCalls: [],
    subscribeAnswer: null,
    brightnessCalls: [],
    brightness: 0.4,
    keepScreenOn: null,
    shared: [],
    clipboard: null,
    canvases: {},
    scrollInfo: { height: 400, scrollHeight: 1200 },
    fontScale: 1,
    inflight: new Set(),
    logins: 0,
    faces: 0,
  }

  function track(p) {
    fake.inflight.add(p)
    const done = () => fake.inflight.delete(p)
    p.then(done, done)
    return p
  }

  function cb(opts, ok, value) {
    const f = ok ? opts.success : opts.fail
    if (f) f(value)
    if (opts.complete) opts.complete(value)
  }

  // storage (JSON round trip like WeChat's)
  w.getStorageSync = (k) => (fake.storage.has(k) ? clone(fake.storage.get(k)) : '')
  w.setStorageSync = (k, v) => fake.storage.set(k, clone(v))
  w.removeStorageSync = (k) => fake.storage.delete(k)
  w.clearStorageSync = () => fake.storage.clear()

  w.login = (opts) => {
    fake.logins += 1
    track(Promise.resolve().then(() => cb(opts, true, { code: 'demo-' + fake.user + '-' + Date.now() + fake.logins, errMsg: 'login:ok' })))
  }

  w.request = (opts) => {
    const req = { url: opts.url, method: (opts.method || 'GET').toUpperCase(), data: opts.data, header: opts.header || {} }
    fake.requests.push(req)
    track(
      Promise.resolve()
        .then(() => fake.transport.request(req))
        .then(
          (res) => cb(opts, true, Object.assign({ errMsg: 'request:ok' }, res)),
          (err) => cb(opts, false, { errMsg: 'request:fail ' + (err && err.message) }),
        ),
    )
    return { abort() {} }
  }

  w.uploadFile = (opts) => {
    const listeners = []
    const req = {
      url: opts.url,
      method: 'POST',
      filePath: opts.filePath,
      name: opts.name,
      formData: opts.formData || {},
      header: opts.header || {},
      upload: true,
    }
    fake.requests.push(req)
    track(
      Promise.resolve()
        .then(() => {
          listeners.forEach((l) => l({ progress: 50, totalBytesSent: 1, totalBytesExpectedToSend: 2 }))
          return fake.transport.upload(req)
        })
        .then(
          (res) => {
            listeners.forEach((l) => l({ progress: 100, totalBytesSent: 2, totalBytesExpectedToSend: 2 }))
            const data = typeof res.data === 'string' ? res.data : JSON.stringify(res.data)
            cb(opts, true, { statusCode: res.statusCode, data, header: res.header, errMsg: 'uploadFile:ok' })
          },
          (err) => cb(opts, false, { errMsg: 'uploadFile:fail ' + (err && err.message) }),
        ),
    )
    return { onProgressUpdate: (l) => listeners.push(l), abort() {} }
  }

  // 人脸核身: answers the next of fake.faceResults ('ok' by default; 'cancel' fails)
  w.startFacialRecognitionVerify = (opts) => {
    fake.faceCalls.push(Object.assign({}, opts))
    const r = fake.faceResults.length ? fake.faceResults.shift() : 'ok'
    fake.faces += 1
    track(
      Promise.resolve().then(() =>
        r === 'cancel'
          ? cb(opts, false, { errCode: 90100, errMsg: 'startFacialRecognitionVerify:fail cancel' })
          : cb(opts, true, { errCode: 0, verifyResult: r + '-' + fake.faces, errMsg: 'startFacialRecognitionVerify:ok' }),
      ),
    )
  }

  const choose = (opts) => {
    const file = fake.media.length ? fake.media.shift() : { tempFilePath: 'wxfile://tmp/photo.png', size: 2048 }
    track(Promise.resolve().then(() => cb(opts, true, { tempFiles: [Object.assign({ fileType: 'image' }, file)], type: 'image' })))
  }
  w.chooseMedia = choose
  w.chooseMessageFile = choose

  // navigation is recorded; the driver (pages.js) follows it
  ;['navigateTo', 'redirectTo', 'reLaunch', 'switchTab'].forEach((type) => {
    w[type] = (opts) => {
      fake.nav.push({ type, url: opts.url })
      if (opts.success) Promise.resolve().then(() => opts.success({ errMsg: type + ':ok' }))
    }
  })
  w.navigateBack = (opts) => fake.nav.push({ type: 'navigateBack', delta: (opts && opts.delta) || 1 })

  w.showModal = (opts) => {
    fake.modals.push({ title: opts.title, content: opts.content })
    const confirm = fake.modalAnswers.length ? fake.modalAnswers.shift() : true
    track(Promise.resolve().then(() => cb(opts, true, { confirm, cancel: !confirm })))
  }
  w.showToast = (opts) => fake.toasts.push(opts.title)
  w.showLoading = () => {}
  w.hideLoading = () => {}
  w.stopPullDownRefresh = () => {}
  w.vibrateShort = () => {}

  w.requestSubscribeMessage = (opts) => {
    fake.subscribeCalls.push(opts.tmplIds.slice())
    const res = { errMsg: 'requestSubscribeMessage:ok' }
    opts.tmplIds.forEach((id) => (res[id] = fake.subscribeAnswer || 'accept'))
    track(Promise.resolve().then(() => cb(opts, true, res)))
  }

  w.getScreenBrightness = (opts) => track(Promise.resolve().then(() => cb(opts, true, { value: fake.brightness })))
  w.setScreenBrightness = (opts) => {
    fake.brightnessCalls.push(opts.value)
    fake.brightness = opts.value
    if (opts.success) opts.success({})
  }
  w.setKeepScreenOn = (opts) => {
    fake.keepScreenOn = opts.keepScreenOn
  }
  w.setClipboardData = (opts) => {
    fake.clipboard = opts.data
    track(Promise.resolve().then(() => cb(opts, true, {})))
  }
  w.shareFileMessage = (opts) => {
    fake.shared.push(opts)
    track(Promise.resolve().then(() => cb(opts, true, {})))
  }

  w.env = { USER_DATA_PATH: 'wxfile://usr' }
  w.getFileSystemManager = () => ({
    writeFile: (o) => {
      fake.files.set(o.filePath, o.data)
      track(Promise.resolve().then(() => cb(o, true, {})))
    },
    readFile: (o) => {
      const ok = fake.files.has(o.filePath)
      track(Promise.resolve().then(() => cb(o, ok, ok ? { data: fake.files.get(o.filePath) } : { errMsg: 'readFile:fail no such file' })))
    },
  })
  w.canvasToTempFilePath = (opts) => {
    const path = 'wxfile://tmp/signature-' + (fake.files.size + 1) + '.png'
    fake.files.set(path, 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC')
    track(Promise.resolve().then(() => cb(opts, true, { tempFilePath: path })))
  }

  // canvas 2d nodes and sizes for wx.createSelectorQuery
  function canvasFor(sel) {
    if (!fake.canvases[sel]) {
      const ops = []
      const ctx = {
        ops,
        fillStyle: '#000',
        strokeStyle: '#000',
        lineWidth: 1,
        lineCap: 'butt',
        lineJoin: 'miter',
        scale: (x, y) => ops.push(['scale', x, y]),
        fillRect: (x, y, wd, h) => ops.push(['fillRect', x, y, wd, h, ctx.fillStyle]),
        clearRect: (x, y, wd, h) => ops.push(['clearRect', x, y, wd, h]),
        beginPath: () => ops.push(['beginPath']),
        moveTo: (x, y) => ops.push(['moveTo', x, y]),
        lineTo: (x, y) => ops.push(['lineTo', x, y]),
        stroke: () => ops.push(['stroke']),
        setTransform: () => ops.push(['setTransform']),
      }
      fake.canvases[sel] = { width: 300, height: 300, ctx, getContext: () => ctx }
    }
    return fake.canvases[sel]
  }
  w.createSelectorQuery = () => {
    const wanted = []
    const q = {
      in: () => q,
      select: (sel) => {
        wanted.push(sel)
        return q
      },
      fields: () => q,
      boundingClientRect: () => q,
      scrollOffset: () => q,
      node: () => q,
      exec: (done) => {
        const res = wanted.map((sel) =>
          /canvas|qr|signature|sign-pad/.test(sel)
            ? { node: canvasFor(sel), width: 300, height: 300 }
            : { height: fake.scrollInfo.height, scrollHeight: fake.scrollInfo.scrollHeight, width: 600 },
        )
        track(Promise.resolve().then(() => done && done(res)))
      },
    }
    return q
  }
  w.getWindowInfo = () => ({ pixelRatio: 2, windowWidth: 375, windowHeight: 700, screenWidth: 375 })
  w.getAppBaseInfo = () => ({ fontSizeScaleFactor: fake.fontScale, fontSizeSetting: Math.round(17 * fake.fontScale), SDKVersion: '3.6.0' })

  fake.settle = async function settle() {
    let quiet = 0
    for (let i = 0; i < 2000; i++) {
      if (fake.inflight.size) {
        quiet = 0
        await Promise.allSettled(Array.from(fake.inflight))
        continue
      }
      await tick()
      if (!fake.inflight.size && ++quiet >= 3) return
    }
    throw new Error('the pages did not settle')
  }
  return fake
}

module.exports = { installWx, tick }
