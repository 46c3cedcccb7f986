// The gossipchain protocol, written from docs/PROTOCOL.md alone: block
// encoding, hashing, authors as peer IDs, signatures, message IDs and the
// sync protocol's frames. Nothing here comes from the Go code.
import { createHash, createPublicKey, sign, verify } from 'node:crypto'

export const TOPIC = 'blocks'
export const SYNC_PROTOCOL = '/gossipchain/sync/1.0.0'
export const MAX_DATA_BYTES = 8192
export const MAX_BLOCK_MESSAGE_BYTES = 50176
export const MAX_HEADER_FRAME = 1024
export const MAX_REQUEST_FRAME = 8192
export const MAX_BLOCKS_PER_ANSWER = 1000

const DOMAIN = Buffer.from('gossipchain/block/v1', 'ascii')
const FIELDS = ['index', 'timestamp', 'data', 'prevHash', 'author', 'hash', 'signature']
const HEX64 = /^[0-9a-f]{64}$/
const HEX128 = /^[0-9a-f]{128}$/

export const GENESIS = {
  index: 0,
  timestamp: 1735689600000,
  data: 'gossipchain genesis',
  prevHash: '0'.repeat(64),
  author: '',
  hash: '3590a22ed544eb1ed89637c6983374c13e2ab132a488b5845f59e7b2d9309d8b',
  signature: ''
}

// encode is the canonical encoding the hash covers.
export function encode (b) {
  const data = Buffer.from(b.data, 'utf8')
  const author = Buffer.from(b.author, 'ascii')
  const head = Buffer.alloc(8 + 8 + 4)
  head.writeBigUInt64BE(BigInt(b.index), 0)
  head.writeBigInt64BE(BigInt(b.timestamp), 8)
  head.writeUInt32BE(data.length, 16)
  const alen = Buffer.alloc(4)
  alen.writeUInt32BE(author.length, 0)
  return Buffer.concat([DOMAIN, head, data, Buffer.from(b.prevHash, 'hex'), alen, author])
}

export function computeHash (b) {
  return createHash('sha256').update(encode(b)).digest('hex')
}

// Base58btc, Bitcoin alphabet.
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

export function base58Encode (bytes) {
  let n = BigInt('0x' + (Buffer.from(bytes).toString('hex') || '0'))
  let out = ''
  while (n > 0n) {
    out = ALPHABET[Number(n % 58n)] + out
    n /= 58n
  }
  for (const byte of bytes) {
    if (byte !== 0) break
    out = '1' + out
  }
  return out
}

export function base58Decode (text) {
  let n = 0n
  for (const c of text) {
    const v = ALPHABET.indexOf(c)
    if (v < 0) throw new Error(`not base58: ${JSON.stringify(c)}`)
    n = n * 58n + BigInt(v)
  }
  let hex = n === 0n ? '' : n.toString(16)
  if (hex.length % 2) hex = '0' + hex
  let zeros = 0
  while (zeros < text.length && text[zeros] === '1') zeros++
  return Buffer.concat([Buffer.alloc(zeros), Buffer.from(hex, 'hex')])
}

// An Ed25519 peer ID is the base58 of this prefix and the 32-byte key.
const AUTHOR_PREFIX = Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])

export function authorID (publicKey) {
  return base58Encode(Buffer.concat([AUTHOR_PREFIX, publicKey]))
}

export function authorKey (id) {
  const raw = base58Decode(id)
  if (raw.length !== 38 || !raw.subarray(0, 6).equals(AUTHOR_PREFIX)) {
    throw new Error(`author ${JSON.stringify(id).slice(0, 60)} is not an Ed25519 peer ID`)
  }
  return raw.subarray(6)
}

// Node.js takes raw Ed25519 public keys wrapped in SubjectPublicKeyInfo.
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')

function publicKeyObject (raw) {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' })
}

// checkBlock applies every rule that needs no other block, and throws the
// reason (the protocol's code) for the first one broken. The signature is
// checked with Node.js's Ed25519, which is strict RFC 8032: it accepts
// everything gossipchain nodes sign, and refuses the rare signatures only
// ZIP-215 accepts (docs/PROTOCOL.md); a full implementation would need a
// ZIP-215 check.
export function checkBlock (b) {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new Error('malformed: not an object')
  const keys = Object.keys(b)
  if (keys.length !== FIELDS.length || !FIELDS.every(f => keys.includes(f))) throw new Error(`malformed: fields ${keys}`)
  if (!Number.isSafeInteger(b.index) || b.index < 0 || !Number.isSafeInteger(b.timestamp)) throw new Error('malformed: index or timestamp')
  if (b.index === 0) throw new Error('genesis: index 0')
  if (typeof b.data !== 'string' || b.data === '') throw new Error('malformed: empty data')
  if (Buffer.byteLength(b.data, 'utf8') > MAX_DATA_BYTES) throw new Error('oversize: data')
  for (const f of ['prevHash', 'hash']) if (typeof b[f] !== 'string' || !HEX64.test(b[f])) throw new Error(`malformed: ${f}`)
  if (typeof b.signature !== 'string' || !HEX128.test(b.signature)) throw new Error('malformed: signature')
  if (typeof b.author !== 'string') throw new Error('bad_author')
  let pub
  try { pub = authorKey(b.author) } catch (err) { throw new Error(`bad_author: ${err.message}`) }
  if (computeHash(b) !== b.hash) throw new Error('invalid_hash')
  if (!verify(null, Buffer.from(b.hash, 'hex'), publicKeyObject(pub), Buffer.from(b.signature, 'hex'))) throw new Error('bad_signature')
}

// decodeBlock parses a gossip message or sync frame as one block.
export function decodeBlock (bytes) {
  if (bytes.length > MAX_BLOCK_MESSAGE_BYTES) throw new Error('malformed: too large')
  let b
  try { b = JSON.parse(Buffer.from(bytes).toString('utf8')) } catch { throw new Error('malformed: not JSON') }
  checkBlock(b)
  return b
}

// signBlock makes data a block on parent, signed by privateKey (a Node.js
// KeyObject) whose public key is publicKey (32 raw bytes).
export function signBlock (parent, data, privateKey, publicKey, now = Date.now()) {
  const b = {
    index: parent.index + 1,
    timestamp: Math.max(now, parent.timestamp + 1),
    data,
    prevHash: parent.hash,
    author: authorID(publicKey),
    hash: '',
    signature: ''
  }
  b.hash = computeHash(b)
  b.signature = sign(null, Buffer.from(b.hash, 'hex'), privateKey).toString('hex')
  return b
}

// messageID names a gossip message: the 32 bytes of the SHA-256 of the
// hash computed from the block's contents and its signature bytes, if the
// hash field is that hash; anything else is the 4 bytes "raw:" and the 32
// bytes of the SHA-256 of its bytes. On the wire (IHAVE, IWANT,
// IDONTWANT) an ID is these bytes.
export function messageID (data) {
  try {
    const b = JSON.parse(Buffer.from(data).toString('utf8'))
    if (typeof b === 'object' && b !== null && typeof b.signature === 'string' && HEX128.test(b.signature) &&
      typeof b.prevHash === 'string' && HEX64.test(b.prevHash) && typeof b.data === 'string' &&
      typeof b.author === 'string' && Number.isSafeInteger(b.index) && Number.isSafeInteger(b.timestamp)) {
      const computed = computeHash(b)
      if (computed === b.hash) {
        return createHash('sha256').update(Buffer.from(computed, 'hex')).update(Buffer.from(b.signature, 'hex')).digest()
      }
    }
  } catch {}
  return Buffer.concat([Buffer.from('raw:', 'ascii'), createHash('sha256').update(data).digest()])
}

// The deep-fork rule (docs/PROTOCOL.md, "Deep forks"): a better branch
// may replace at most FINALITY main-chain blocks that have stood SETTLE_MS,
// unless more than half of the blocks it adds are by members: authors of
// the last MEMBER_WINDOW main-chain blocks up to the fork.
export const FINALITY = 64
export const SETTLE_MS = 10000
export const MEMBER_WINDOW = 1024

// membersBranch reports whether branch (the blocks above main[fork], in
// order) is the members' branch.
export function membersBranch (main, fork, branch) {
  const members = new Set()
  for (let h = Math.max(1, fork - MEMBER_WINDOW + 1); h <= fork; h++) members.add(main[h].author)
  const m = branch.filter((b) => members.has(b.author)).length
  return 2 * m > branch.length
}

// better is the fork-choice rule: higher, then lower hash.
export function better (a, b) {
  return a.index > b.index || (a.index === b.index && a.hash < b.hash)
}

// Frames: an unsigned LEB128 length, then that many bytes of JSON.
export function frame (value) {
  const body = Buffer.from(JSON.stringify(value), 'utf8')
  const len = []
  let n = body.length
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n) byte |= 0x80
    len.push(byte)
  } while (n)
  return Buffer.concat([Buffer.from(len), body])
}

// FrameReader takes bytes as they come and hands out whole frames.
export class FrameReader {
  constructor () { this.buf = Buffer.alloc(0) }
  push (chunk) { this.buf = Buffer.concat([this.buf, chunk]) }
  // next returns the next frame's bytes, or null if it has not all come.
  next (max) {
    let len = 0
    let shift = 0
    for (let i = 0; i < this.buf.length && i < 10; i++) {
      const byte = this.buf[i]
      len += (byte & 0x7f) * 2 ** shift
      shift += 7
      if (!(byte & 0x80)) {
        if (len > max) throw new Error(`frame of ${len} bytes, limit ${max}`)
        if (this.buf.length < i + 1 + len) return null
        const out = this.buf.subarray(i + 1, i + 1 + len)
        this.buf = this.buf.subarray(i + 1 + len)
        return out
      }
    }
    return null
  }
}
