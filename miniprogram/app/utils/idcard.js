// 居民身份证 number checked as the user types (GB 11643: 17 digits, then the check character
// over weights 2^(17-i) mod 11; the birth date YYYYMMDD at [6, 14]). The server checks again
// (INVALID_ID_NUMBER); this only spares a round trip and says what is wrong, digit by digit.

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
const CHECK = '10X98765432'

function checkChar(first17) {
  let sum = 0
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * WEIGHTS[i]
  return CHECK[sum % 11]
}

// Today in Asia/Shanghai as [y, m, d], whatever the phone's time zone.
function shanghaiToday(nowMs) {
  const d = new Date((nowMs === undefined ? Date.now() : nowMs) + 8 * 3600 * 1000)
  return [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()]
}

function ageOn(birth, today) {
  let age = today[0] - birth[0]
  if (today[1] < birth[1] || (today[1] === birth[1] && today[2] < birth[2])) age -= 1
  return age
}

function validDate(y, m, d) {
  const dt = new Date(Date.UTC(y, m - 1, d))
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d
}

// → {state: 'empty'|'typing'|'invalid'|'ok', message, value (normalised), birth?, age?}
function checkResidentId(raw, nowMs) {
  const value = String(raw || '').replace(/\s+/g, '').toUpperCase()
  if (!value) return { state: 'empty', message: '', value }
  if (!/^\d{0,17}[\dX]?$/.test(value) || (value.indexOf('X') >= 0 && value.length !== 18)) {
    return { state: 'invalid', message: '只能填数字,最后一位可以是 X', value }
  }
  if (value.length < 18) {
    return { state: 'typing', message: '还差 ' + (18 - value.length) + ' 位', value }
  }
  const y = Number(value.slice(6, 10))
  const m = Number(value.slice(10, 12))
  const d = Number(value.slice(12, 14))
  const today = shanghaiToday(nowMs)
  const future = y > today[0] || (y === today[0] && (m > today[1] || (m === today[1] && d > today[2])))
  if (y < 1900 || !validDate(y, m, d) || future) {
    return { state: 'invalid', message: '第 7 到 14 位的出生日期不对,请核对', value }
  }
  if (checkChar(value.slice(0, 17)) !== value[17]) {
    return { state: 'invalid', message: '号码有误(最后一位校验位不符),请逐位核对', value }
  }
  const age = ageOn([y, m, d], today)
  return {
    state: 'ok',
    message: '号码格式正确,出生日期 ' + y + '年' + m + '月' + d + '日(' + age + ' 岁)',
    value,
    birth: [y, m, d],
    age,
  }
}

// Other documents: only that something plausible was typed; the server decides.
function checkOther(raw) {
  const value = String(raw || '').replace(/\s+/g, '').toUpperCase()
  if (!value) return { state: 'empty', message: '', value }
  if (!/^[0-9A-Z()()-]{5,32}$/.test(value)) {
    return { state: 'invalid', message: '只能填字母和数字,请按证件上的号码填写', value }
  }
  return { state: 'ok', message: '', value }
}

function check(idType, raw, nowMs) {
  return idType === 'resident_id' ? checkResidentId(raw, nowMs) : checkOther(raw)
}

module.exports = { check, checkResidentId, checkChar, shanghaiToday }
