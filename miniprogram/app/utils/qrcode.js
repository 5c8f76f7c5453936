// A small QR code encoder (ISO/IEC 18004) for the 医保码: byte mode, error correction level M,
// versions 1–10 (up to 213 bytes; a qr_token is about 40). No dependency, so the mini-program
// needs no npm build. encode(text) → {size, modules: boolean[size][size] (true = dark)}.

// Per version at level M: [EC codewords per block, [blocks, data codewords per block], ...]
const BLOCKS_M = [
  null,
  [10, [1, 16]],
  [16, [1, 28]],
  [26, [1, 44]],
  [18, [2, 32]],
  [24, [2, 43]],
  [16, [4, 27]],
  [18, [4, 31]],
  [22, [2, 38], [2, 39]],
  [22, [3, 36], [2, 37]],
  [26, [4, 43], [1, 44]],
]
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]]
const FORMAT_BITS_M = 0 // level M's two format bits

// --- GF(256), primitive polynomial 0x11D -----------------------------------------------
const EXP = new Array(512)
const LOG = new Array(256)
;(function init() {
  let x = 1
  for (let i = 0; i < 255; i++) {
    EXP[i] = x
    LOG[x] = i
    x <<= 1
    if (x & 0x100) x ^= 0x11d
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]
})()

function mul(a, b) {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]
}

function generator(degree) {
  let poly = [1]
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0)
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j]
      next[j + 1] ^= mul(poly[j], EXP[i])
    }
    poly = next
  }
  return poly
}

function remainder(data, degree) {
  const gen = generator(degree)
  const rem = new Array(degree).fill(0)
  for (const byte of data) {
    const factor = byte ^ rem[0]
    rem.shift()
    rem.push(0)
    for (let i = 0; i < degree; i++) rem[i] ^= mul(gen[i + 1], factor)
  }
  return rem
}

// --- data codewords -----------------------------------------------------------------------
function utf8(text) {
  const out = []
  for (const ch of String(text)) {
    let c = ch.codePointAt(0)
    if (c < 0x80) out.push(c)
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63))
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63))
  }
  return out
}

function dataCapacity(version) {
  const spec = BLOCKS_M[version]
  let n = 0
  for (let g = 1; g < spec.length; g++) n += spec[g][0] * spec[g][1]
  return n
}

function codewords(bytes, version) {
  const capacity = dataCapacity(version)
  const bits = []
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1)
  }
  put(0b0100, 4) // byte mode
  put(bytes.length, version < 10 ? 8 : 16)
  bytes.forEach((b) => put(b, 8))
  put(0, Math.min(4, capacity * 8 - bits.length)) // terminator
  while (bits.length % 8) bits.push(0)
  const out = []
  for (let i = 0; i < bits.length; i += 8) {
    let b = 0
    for (let j = 0; j < 8; j++) b = (b << 1) | bits[i + j]
    out.push(b)
  }
  for (let pad = 0xec; out.length < capacity; pad ^= 0xec ^ 0x11) out.push(pad)
  return out
}

function interleave(data, version) {
  const spec = BLOCKS_M[version]
  const ecLen = spec[0]
  const blocks = []
  let at = 0
  for (let g = 1; g < spec.length; g++) {
    for (let b = 0; b < spec[g][0]; b++) {
      const d = data.slice(at, at + spec[g][1])
      at += spec[g][1]
      blocks.push({ d, ec: remainder(d, ecLen) })
    }
  }
  const out = []
  const longest = Math.max.apply(null, blocks.map((b) => b.d.length))
  for (let i = 0; i < longest; i++) blocks.forEach((b) => i < b.d.length && out.push(b.d[i]))
  for (let i = 0; i < ecLen; i++) blocks.forEach((b) => out.push(b.ec[i]))
  return out
}

// --- the matrix ---------------------------------------------------------------------------
function Matrix(version) {
  this.size = version * 4 + 17
  this.m = []
  this.fn = []
  for (let y = 0; y < this.size; y++) {
    this.m.push(new Array(this.size).fill(false))
    this.fn.push(new Array(this.size).fill(false))
  }
}
Matrix.prototype.set = function (x, y, dark) {
  this.m[y][x] = dark
  this.fn[y][x] = true
}

function drawFunctionPatterns(q, version) {
  const s = q.size
  for (let i = 0; i < s; i++) {
    q.set(6, i, i % 2 === 0)
    q.set(i, 6, i % 2 === 0)
  }
  const finder = (cx, cy) => {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx
        const y = cy + dy
        if (x < 0 || y < 0 || x >= s || y >= s) continue
        const d = Math.max(Math.abs(dx), Math.abs(dy))
        q.set(x, y, d !== 2 && d !== 4)
      }
    }
  }
  finder(3, 3)
  finder(s - 4, 3)
  finder(3, s - 4)
  const pos = ALIGN[version]
  for (let i = 0; i < pos.length; i++) {
    for (let j = 0; j < pos.length; j++) {
      const corner = (i === 0 && j === 0) || (i === 0 && j === pos.length - 1) || (i === pos.length - 1 && j === 0)
      if (corner) continue
      for (let dy = -2; dy <= 2; dy++) {
        for (let dx = -2; dx <= 2; dx++) {
          q.set(pos[i] + dx, pos[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1)
        }
      }
    }
  }
  drawFormat(q, 0) // reserves the format areas; redrawn with the chosen mask
  if (version >= 7) {
    let rem = version
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25)
    const bits = (version << 12) | rem
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1
      const a = s - 11 + (i % 3)
      const b = Math.floor(i / 3)
      q.set(a, b, dark)
      q.set(b, a, dark)
    }
  }
}

function drawFormat(q, mask) {
  const data = (FORMAT_BITS_M << 3) | mask
  let rem = data
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537)
  const bits = ((data << 10) | rem) ^ 0x5412
  const bit = (i) => ((bits >>> i) & 1) === 1
  const s = q.size
  for (let i = 0; i <= 5; i++) q.set(8, i, bit(i))
  q.set(8, 7, bit(6))
  q.set(8, 8, bit(7))
  q.set(7, 8, bit(8))
  for (let i = 9; i < 15; i++) q.set(14 - i, 8, bit(i))
  for (let i = 0; i < 8; i++) q.set(s - 1 - i, 8, bit(i))
  for (let i = 8; i < 15; i++) q.set(8, s - 15 + i, bit(i))
  q.set(8, s - 8, true) // the dark module
}

function placeData(q, bytes) {
  const s = q.size
  let i = 0
  for (let right = s - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5
    for (let v = 0; v < s; v++) {
      for (let j = 0; j < 2; j++) {
        const x = right - j
        const upward = ((right + 1) & 2) === 0
        const y = upward ? s - 1 - v : v
        if (!q.fn[y][x] && i < bytes.length * 8) {
          q.m[y][x] = ((bytes[i >>> 3] >>> (7 - (i & 7))) & 1) === 1
          i++
        }
      }
    }
  }
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
]

function applyMask(q, mask) {
  for (let y = 0; y < q.size; y++) {
    for (let x = 0; x < q.size; x++) {
      if (!q.fn[y][x] && MASKS[mask](x, y)) q.m[y][x] = !q.m[y][x]
    }
  }
}

// The standard's penalty score: runs, 2×2 blocks, finder-like patterns, dark balance.
function penalty(q) {
  const s = q.size
  const m = q.m
  let score = 0
  const line = (get) => {
    let run = 1
    for (let i = 1; i <= s; i++) {
      if (i < s && get(i) === get(i - 1)) run++
      else {
        if (run >= 5) score += 3 + run - 5
        run = 1
      }
    }
    for (let i = 0; i + 10 < s; i++) {
      let a = true
      let b = true
      const p = [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0]
      for (let k = 0; k < 11; k++) {
        if (get(i + k) !== (p[k] === 1)) a = false
        if (get(i + k) !== (p[10 - k] === 1)) b = false
      }
      if (a) score += 40
      if (b) score += 40
    }
  }
  for (let y = 0; y < s; y++) line((x) => m[y][x])
  for (let x = 0; x < s; x++) line((y) => m[y][x])
  let dark = 0
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      if (m[y][x]) dark++
      if (x + 1 < s && y + 1 < s) {
        const c = m[y][x]
        if (m[y][x + 1] === c && m[y + 1][x] === c && m[y + 1][x + 1] === c) score += 3
      }
    }
  }
  score += Math.floor(Math.abs((dark * 100) / (s * s) - 50) / 5) * 10
  return score
}

function encode(text) {
  const bytes = utf8(text)
  let version = 1
  while (version <= 10 && dataCapacity(version) < bytes.length + (version < 10 ? 2 : 3)) version++
  if (version > 10) throw new Error('QR: text too long (' + bytes.length + ' bytes)')
  const all = interleave(codewords(bytes, version), version)
  let best = null
  for (let mask = 0; mask < 8; mask++) {
    const q = new Matrix(version)
    drawFunctionPatterns(q, version)
    placeData(q, all)
    applyMask(q, mask)
    drawFormat(q, mask)
    const p = penalty(q)
    if (!best || p < best.p) best = { p, q, mask }
  }
  return { version, mask: best.mask, size: best.q.size, modules: best.q.m }
}

module.exports = { encode }
