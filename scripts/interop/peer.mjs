// A gossipchain peer on js-libp2p: a second implementation of the protocol
// (protocol.mjs, from docs/PROTOCOL.md) that TestJSInterop runs against real
// gossipchain nodes.
//
//   node scripts/interop/peer.mjs MULTIADDR...
//
// It dials the given nodes, joins the blocks topic, and checks every block
// it receives (hash, link, signature): valid ones are accepted and relayed,
// invalid ones rejected. It answers sync requests (status, blocks, peers)
// from its own chain, and trace requests with "unknown" (it keeps no
// traces). It reads one JSON command per line on stdin and
// writes one JSON event per line on stdout:
//
//   {"cmd":"sync"}              fetch the main chain by sync, check all of it
//                               (it also syncs on start, and whenever gossip
//                               brings a block whose parent it lacks)
//   {"cmd":"append","data":D}   sign D as a block on the head, publish it
//   {"cmd":"tamper","data":D}   publish the last block appended with its data
//                               replaced (hash and signature kept)
//   {"cmd":"quit"}
//
// Events: ready, block, synced, appended, tampered, error.
import './polyfill.mjs'
import { generateKeyPairSync } from 'node:crypto'
import { createInterface } from 'node:readline'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import * as P from './protocol.mjs'

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
const fail = (message) => { emit('error', { message }); process.exitCode = 1 }

// The author key: an Ed25519 key made here. Its peer ID is computed by the
// protocol's rule and must be the one libp2p derives from the same key.
const keys = generateKeyPairSync('ed25519')
const jwk = keys.privateKey.export({ format: 'jwk' })
const seed = Buffer.from(jwk.d, 'base64url')
const pub = Buffer.from(jwk.x, 'base64url')
const me = P.authorID(pub)

// The chain: every valid block whose parent is known, the main chain by
// fork choice, orphans held until their parent comes.
const blocks = new Map([[P.GENESIS.hash, P.GENESIS]])
const orphans = new Map() // parent hash -> blocks
let head = P.GENESIS
let lastAppended = null

// add stores a checked block whose parent is known, then the orphans
// waiting for it. It returns the reason a block does not fit, or ''.
function add (b, via) {
  if (blocks.has(b.hash)) return 'duplicate'
  const parent = blocks.get(b.prevHash)
  if (!parent) {
    if (!orphans.has(b.prevHash)) orphans.set(b.prevHash, [])
    orphans.get(b.prevHash).push(b)
    return 'unknown_parent'
  }
  if (b.index !== parent.index + 1) return 'bad_index'
  blocks.set(b.hash, b)
  if (P.better(b, head) && !switchTo(b)) emit('refused', { index: b.index, hash: b.hash })
  emit('block', { index: b.index, hash: b.hash, data: b.data, author: b.author, via })
  for (const o of orphans.get(b.hash) ?? []) add(o, via)
  orphans.delete(b.hash)
  return ''
}

// The main chain by height, and when each height joined it (ms).
const main = [P.GENESIS]
const joined = [0]

// switchTo makes the better block tip the head, unless the switch would
// replace settled history deeper than the finality depth and the branch is
// not the members' (docs/PROTOCOL.md, "Deep forks"). It reports whether it
// switched.
function switchTo (tip) {
  const branch = []
  let b = tip
  while (main[b.index]?.hash !== b.hash) {
    branch.push(b)
    b = blocks.get(b.prevHash)
  }
  branch.reverse()
  const fork = b.index
  const replace = main.length - 1 - fork
  const settled = replace > 0 && Date.now() - joined[fork + 1] >= P.SETTLE_MS
  if (replace > P.FINALITY && settled && !P.membersBranch(main, fork, branch)) return false
  main.length = fork + 1
  joined.length = fork + 1
  const now = Date.now()
  for (const x of branch) {
    main.push(x)
    joined.push(now)
  }
  head = tip
  return true
}

// mainChain lists the main chain from genesis to the head.
function mainChain () {
  return main.slice()
}

const status = () => ({ genesis: P.GENESIS.hash, height: head.index, head: head.hash })

const node = await createLibp2p({
  privateKey: privateKeyFromRaw(Buffer.concat([seed, pub])),
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      globalSignaturePolicy: StrictNoSign,
      msgIdFn: (msg) => new Uint8Array(P.messageID(msg.data)),
      floodPublish: true,
      allowPublishToZeroTopicPeers: true,
      emitSelf: false
    })
  }
})
if (node.peerId.toString() !== me) {
  fail(`peer ID by the protocol's rule ${me}, by libp2p ${node.peerId}`)
  process.exit(1)
}
const pubsub = node.services.pubsub

pubsub.topicValidators.set(P.TOPIC, (from, msg) => {
  let b
  try {
    b = P.decodeBlock(msg.data)
  } catch (err) {
    emit('rejected', { from: from.toString(), reason: err.message })
    return TopicValidatorResult.Reject
  }
  // The ID this peer gives the message, for the test to compare with the
  // Go nodes' (hex here; on the wire it is the bytes).
  emit('named', { hash: b.hash, msgId: P.messageID(msg.data).toString('hex') })
  switch (add(b, 'gossip')) {
    case '': return TopicValidatorResult.Accept
    case 'bad_index': return TopicValidatorResult.Reject
    case 'unknown_parent':
      catchUp(from) // held; its ancestors come by sync
      return TopicValidatorResult.Ignore
    default: return TopicValidatorResult.Ignore
  }
})
pubsub.subscribe(P.TOPIC)

// The sync protocol, served: one request frame, one answer.
await node.handle(P.SYNC_PROTOCOL, async (stream) => {
  try {
    const reader = new P.FrameReader()
    let req = null
    for await (const chunk of stream) {
      reader.push(Buffer.from(chunk.subarray()))
      const f = reader.next(P.MAX_REQUEST_FRAME)
      if (f) { req = JSON.parse(f.toString('utf8')); break }
    }
    if (!req) throw new Error('no request')
    const parts = []
    if (req.type === 'status') {
      parts.push(P.frame(status()))
    } else if (req.type === 'blocks') {
      const main = mainChain()
      const onMain = new Map(main.map((b, i) => [b.hash, i]))
      const from = (req.locator ?? []).find(h => onMain.has(h))
      const after = from === undefined ? [] : main.slice(onMain.get(from) + 1, onMain.get(from) + 1 + Math.min(req.limit ?? 1, P.MAX_BLOCKS_PER_ANSWER))
      const hdr = { count: after.length, status: status() }
      if (from === undefined) hdr.error = 'no locator hash is on this node\'s main chain'
      parts.push(P.frame(hdr), ...after.map(b => P.frame(b)))
    } else if (req.type === 'peers') {
      parts.push(P.frame({ peers: [] }))
    } else if (req.type === 'trace') {
      parts.push(P.frame({ known: false })) // this peer keeps no traces
    } else {
      throw new Error(`request type ${req.type}`)
    }
    for (const p of parts) {
      if (!stream.send(p)) await stream.onDrain()
    }
    await stream.close()
  } catch (err) {
    stream.abort(err)
  }
}, { runOnLimitedConnection: false })

// request sends one sync request to peer and returns the frames of its
// answer: the first within maxFirst bytes, the rest within maxRest.
async function request (peer, req, maxFirst, maxRest) {
  const stream = await node.dialProtocol(peer, P.SYNC_PROTOCOL)
  stream.send(P.frame(req))
  await stream.close() // our side is done writing
  const reader = new P.FrameReader()
  const frames = []
  let want = Infinity
  for await (const chunk of stream) {
    reader.push(Buffer.from(chunk.subarray()))
    for (let f; frames.length < want && (f = reader.next(frames.length === 0 ? maxFirst : maxRest));) {
      frames.push(JSON.parse(f.toString('utf8')))
      if (frames.length === 1) want = req.type === 'blocks' ? 1 + frames[0].count : 1
    }
    if (frames.length >= want) break
  }
  if (frames.length < want) throw new Error(`answer ended after ${frames.length} of ${want} frames`)
  return frames
}

// syncFrom fetches peer's main chain after genesis and checks every block:
// hash, signature, and its link to the one before.
async function syncFrom (peer, report) {
  const [st] = await request(peer, { type: 'status', status: status() }, P.MAX_HEADER_FRAME)
  if (st.genesis !== P.GENESIS.hash) throw new Error(`peer is on another network: genesis ${st.genesis}`)
  let prev = P.GENESIS
  let checked = 0
  while (prev.index < st.height) {
    const [hdr, ...got] = await request(peer, { type: 'blocks', locator: [prev.hash, P.GENESIS.hash], limit: P.MAX_BLOCKS_PER_ANSWER }, P.MAX_HEADER_FRAME, P.MAX_BLOCK_MESSAGE_BYTES)
    if (hdr.error) throw new Error(`peer says: ${hdr.error}`)
    if (got.length === 0) break
    for (const b of got) {
      P.checkBlock(b)
      if (b.prevHash !== prev.hash || b.index !== prev.index + 1) throw new Error(`block ${b.index} does not link to block ${prev.index}`)
      add(b, 'sync')
      prev = b
      checked++
    }
  }
  if (prev.hash !== st.head) throw new Error(`synced to ${prev.index} ${prev.hash}, peer said ${st.height} ${st.head}`)
  if (report) emit('synced', { peer: peer.toString(), height: prev.index, head: prev.hash, checked })
}

// catchUp syncs from peer unless a sync is running.
let syncing = null
function catchUp (peer, report = false) {
  syncing ??= syncFrom(peer, report).catch(err => fail(`sync: ${err.message}`)).finally(() => { syncing = null })
  return syncing
}

for (const addr of process.argv.slice(2)) {
  await node.dial(multiaddr(addr))
}
// What the network has so far, before anything new arrives.
await catchUp(node.getPeers()[0])
// Ready once a gossipchain node is subscribed to the topic and in the mesh.
const deadline = Date.now() + 20000
while (pubsub.getMeshPeers(P.TOPIC).length === 0) {
  if (Date.now() > deadline) { fail('no gossipchain node joined the mesh within 20 s'); process.exit(1) }
  await new Promise(resolve => setTimeout(resolve, 50))
}
emit('ready', { id: me, addrs: node.getMultiaddrs().map(String), mesh: pubsub.getMeshPeers(P.TOPIC) })

const publish = async (b) => (await pubsub.publish(P.TOPIC, new TextEncoder().encode(JSON.stringify(b)))).recipients.length

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  try {
    const cmd = JSON.parse(line)
    if (cmd.cmd === 'quit') break
    if (cmd.cmd === 'sync') {
      await syncing
      await catchUp(node.getPeers()[0], true)
    } else if (cmd.cmd === 'append') {
      const b = P.signBlock(head, cmd.data, keys.privateKey, pub)
      add(b, 'local')
      lastAppended = b
      emit('appended', { index: b.index, hash: b.hash, recipients: await publish(b) })
    } else if (cmd.cmd === 'tamper') {
      if (!lastAppended) throw new Error('nothing appended to tamper with')
      const b = { ...lastAppended, data: cmd.data }
      emit('tampered', { index: b.index, hash: b.hash, recipients: await publish(b) })
    } else {
      throw new Error(`unknown command ${cmd.cmd}`)
    }
  } catch (err) {
    fail(err.message)
  }
}
await node.stop()
