// Display helpers: money in 分 → 元, the server's +08:00 times, and the labels of codes.

function yuan(fen) {
  if (fen === null || fen === undefined || fen === '') return '—'
  const n = Math.round(Number(fen))
  const sign = n < 0 ? '-' : ''
  const a = Math.abs(n)
  const cents = String(a % 100)
  return sign + Math.floor(a / 100) + '.' + (cents.length < 2 ? '0' + cents : cents) + ' 元'
}

// '123.45' (元, as typed) → 12345 分 exactly, no floating point; null when not an amount
function fenFromYuan(text) {
  const m = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(String(text || '').trim())
  if (!m) return null
  return Number(m[1]) * 100 + Number(((m[2] || '') + '00').slice(0, 2))
}

// '2026-12-02T10:30:00+08:00' → '2026年12月2日 10:30' (read as written: the API speaks +08:00)
function datetime(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(iso || '')
  if (!m) return ''
  const date = m[1] + '年' + Number(m[2]) + '月' + Number(m[3]) + '日'
  return m[4] ? date + ' ' + m[4] + ':' + m[5] : date
}

// '…T00:33:16+08:00' → '00:33:16'
function clock(iso) {
  const m = /T(\d{2}):(\d{2}):(\d{2})/.exec(iso || '')
  return m ? m[1] + ':' + m[2] + ':' + m[3] : ''
}

function date(iso) {
  return datetime(iso).split(' ')[0]
}

const RELATIONSHIPS = {
  spouse: '配偶',
  parent: '父母',
  child: '子女',
  sibling: '兄弟姐妹',
  grandparent: '祖父母、外祖父母',
  grandchild: '孙子女、外孙子女',
}

// what the member is to the binder, as a question the binder answers
const RELATIONSHIP_CHOICES = [
  { value: 'parent', label: '父母(TA 是我的父亲或母亲)' },
  { value: 'spouse', label: '配偶(TA 是我的丈夫或妻子)' },
  { value: 'child', label: '子女(TA 是我的儿子或女儿)' },
]

const MUTUAL_AID_RELATIONSHIPS = RELATIONSHIP_CHOICES.concat([
  { value: 'sibling', label: '兄弟姐妹(当地开通后可选)' },
  { value: 'grandparent', label: '祖父母、外祖父母(当地开通后可选)' },
  { value: 'grandchild', label: '孙子女、外孙子女(当地开通后可选)' },
])

const ID_TYPES = [
  { value: 'resident_id', label: '居民身份证' },
  { value: 'birth_certificate', label: '出生医学证明(新生儿)' },
  { value: 'hk_mo_tw_residence_permit', label: '港澳台居民居住证' },
  { value: 'hk_mo_travel_permit', label: '港澳居民来往内地通行证' },
  { value: 'tw_travel_permit', label: '台湾居民来往大陆通行证' },
  { value: 'passport', label: '护照' },
  { value: 'foreign_permanent_resident', label: '外国人永久居留身份证' },
]

const MATERIAL_KINDS = [
  { value: 'household_register', label: '户口本(本人页或关系页)' },
  { value: 'id_card_front', label: '身份证人像面' },
  { value: 'id_card_back', label: '身份证国徽面' },
  { value: 'birth_certificate', label: '出生医学证明' },
  { value: 'relationship_notarization', label: '关系公证书' },
  { value: 'passport', label: '护照' },
  { value: 'residence_permit', label: '居住证' },
  { value: 'travel_permit', label: '通行证' },
]

// Every state reads as words with a symbol, never by colour alone.
const APPLICATION_STATES = {
  draft: { text: '填写中', mark: '○' },
  materials: { text: '已上传材料', mark: '○' },
  commitment_signed: { text: '已签承诺书,待提交', mark: '○' },
  submitted: { text: '已提交', mark: '…' },
  pending_review: { text: '等待人工审核', mark: '…' },
  correction_requested: { text: '审核要求补充材料', mark: '!' },
  needs_action: { text: '需要您处理', mark: '!' },
  active: { text: '绑定成功', mark: '✓' },
  failed: { text: '未成功', mark: '✕' },
  cancelled: { text: '已取消', mark: '—' },
  unbound: { text: '已解除', mark: '—' },
}

const NOTICE_STATES = {
  pending: { text: '等待发送', mark: '…' },
  sent: { text: '已发送', mark: '→' },
  delivered: { text: '已送达', mark: '✓' },
  failed: { text: '发送失败', mark: '✕' },
  undeliverable: { text: '无法送达', mark: '✕' },
}

const NOTICE_KINDS = {
  family_settlement: '家人就医结算通知',
  mutual_aid_debit: '共济账户支出通知',
  member_settlement: '就医结算通知',
  reversal: '结算撤销通知',
  binding_result: '绑定审核结果',
  member_bound: '您被添加为亲情账户成员',
  member_unbound: '亲情账户绑定已解除',
}

const MED_TYPES = { 11: '普通门诊', 14: '门诊慢特病', 21: '普通住院', 41: '定点药店购药' }

const INSURANCE_TYPES = { employee: '职工医保', resident: '城乡居民医保' }

function label(table, value) {
  const v = table[value]
  if (v === undefined) return value || ''
  return typeof v === 'string' ? v : v.text
}

function state(table, value) {
  return table[value] || { text: value || '', mark: '·' }
}

function choiceLabel(list, value) {
  const c = list.find((x) => x.value === value)
  return c ? c.label : value
}

module.exports = {
  yuan,
  fenFromYuan,
  datetime,
  date,
  clock,
  label,
  state,
  choiceLabel,
  RELATIONSHIPS,
  RELATIONSHIP_CHOICES,
  MUTUAL_AID_RELATIONSHIPS,
  ID_TYPES,
  MATERIAL_KINDS,
  APPLICATION_STATES,
  NOTICE_STATES,
  NOTICE_KINDS,
  MED_TYPES,
  INSURANCE_TYPES,
}
