// Reads back the QR code a page drew on a (fake) 2d canvas: replays its fillRect calls into a
// bitmap and decodes it with jsQR — the test sees what a hospital's scanner would.

const jsQR = require('jsqr')

function bitmap(canvas) {
  const w = canvas.width
  const h = canvas.height
  const img = new Uint8ClampedArray(w * h * 4).fill(255)
  let s = 1
  canvas.ctx.ops.forEach((op) => {
    if (op[0] === 'scale') s = op[1]
    if (op[0] !== 'fillRect') return
    const v = /^#?(000|000000|black)$/i.test(op[5]) ? 0 : 255
    const x0 = Math.round(op[1] * s)
    const y0 = Math.round(op[2] * s)
    const x1 = Math.round((op[1] + op[3]) * s)
    const y1 = Math.round((op[2] + op[4]) * s)
    for (let y = Math.max(0, y0); y < Math.min(h, y1); y++) {
      for (let x = Math.max(0, x0); x < Math.min(w, x1); x++) {
        const p = (y * w + x) * 4
        img[p] = img[p + 1] = img[p + 2] = v
      }
    }
  })
  return { img, w, h }
}

function readQr(canvas) {
  const { img, w, h } = bitmap(canvas)
  const r = jsQR(img, w, h)
  return r ? r.data : null
}

module.exports = { readQr }
