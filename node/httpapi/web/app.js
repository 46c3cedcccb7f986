// gossipchain dashboard: reads the node's JSON API and follows GET /events
// (Server-Sent Events, read with fetch so an API token can be sent).
"use strict";

const PAGE = 50; // blocks per page: the chain can be far longer than a page
const $ = (id) => document.getElementById(id);
const state = { height: 0, head: "", from: null, rows: [], peers: [] }; // from null: following the head
let token = sessionStorage.getItem("gossipchain-token") || "";

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (resp.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this node's API needs a token");
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

const short = (s, n = 8) => (s || "").slice(0, n);
const tail = (s, n = 6) => (s || "").slice(-n);

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function cell(tr, text, cls, title) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (title) td.title = title;
  tr.appendChild(td);
  return td;
}

function blockRow(b, fresh) {
  const tr = document.createElement("tr");
  tr.className = "block" + (fresh ? " new" : "") + (b.hash === state.trace ? " selected" : "");
  tr.dataset.index = b.index;
  tr.dataset.hash = b.hash;
  cell(tr, b.index, "num");
  cell(tr, short(b.hash), null, b.hash).classList.add("mono");
  cell(tr, b.index === 0 ? "genesis" : tail(b.author), null, b.author);
  cell(tr, b.data, "data");
  const a = cell(tr, age(b.timestamp), "age");
  a.dataset.ts = b.timestamp;
  return tr;
}

function renderChain(blocks, freshHash) {
  const body = $("chain");
  body.replaceChildren(...blocks.slice().reverse().map((b) => blockRow(b, b.hash === freshHash)));
  state.rows = blocks;
  const lo = blocks.length ? blocks[0].index : 0, hi = blocks.length ? blocks[blocks.length - 1].index : 0;
  $("chain-range").textContent = blocks.length ? `#${lo}–#${hi} of #${state.height}` : "";
  $("older").disabled = lo === 0;
  $("newer").disabled = state.from === null;
  $("latest").disabled = state.from === null;
}

async function loadChain(freshHash) {
  const from = state.from === null ? Math.max(0, state.height - PAGE + 1) : state.from;
  const blocks = await api(`/blocks?from=${from}&limit=${PAGE}`);
  renderChain(blocks, freshHash);
}

function setHead(height, head) {
  state.height = height;
  state.head = head;
  $("height").textContent = height;
  $("head-hash").textContent = short(head, 16);
  $("head-hash").title = head;
}

async function loadStatus() {
  const s = await api("/status");
  state.id = s.id;
  renderPropagation(s.propagation);
  $("node-id").textContent = s.id;
  $("node-addr").textContent = (s.addrs || [])[0] || "";
  renderReach(s.reachability);
  setHead(s.height, s.head);
  renderDrops(s.drops || {});
  renderSync(s.syncing);
  renderSplit(s.refused_branches || []);
}

// renderSplit shows the branches this node refuses: peers connected but on
// a chain it will not adopt.
function renderSplit(refused) {
  $("split").hidden = refused.length === 0;
  $("split-text").textContent = refused
    .map((r) => `Peer …${r.peer.slice(-6)} is on a branch at #${r.height} that forks at #${r.fork_height}; adopting it would replace ${r.replace} settled blocks here, and only ${r.members} of its ${r.blocks} blocks are by this network's members.`)
    .join(" ");
}

const REACH = {
  public: ["public", "peers can dial this node; it relays for nodes behind NAT"],
  private: ["behind NAT", "peers reach this node through a relay, then directly by hole punching"],
  unknown: ["unknown", "not known yet (or no public address: loopback, LAN)"],
};

function renderReach(r) {
  const [text, title] = REACH[r] || REACH.unknown;
  $("reach").textContent = text;
  $("reach").title = title;
  $("reach").className = "reach " + (r || "unknown");
}

// link describes how a peer is connected: its best connection's
// transport, and whether it is relayed or was hole-punched.
function link(p) {
  const conns = p.conns || [];
  const c = conns.find((c) => c.kind === "direct") || conns[0];
  if (!c) return ["", ""];
  const how = c.kind === "relayed" ? " ·relayed" : c.hole_punched ? " ·punched" : "";
  return [c.transport + how, conns.map((c) => `${c.kind}${c.hole_punched ? " (hole-punched)" : ""} ${c.transport} ${c.addr}`).join("\n")];
}

function renderPropagation(p) {
  const ms = (v) => (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms";
  const have = p && p.blocks > 0;
  $("prop-p50").textContent = have ? ms(p.p50_ms) : "–";
  $("prop-p99").textContent = have ? ms(p.p99_ms) : "–";
  $("prop-n").textContent = have ? p.blocks : 0;
}

// showTrace opens the spread of one block: this node's trace and its
// peers', ordered by when each first had it.
async function showTrace(hash, index) {
  state.trace = hash;
  for (const tr of document.querySelectorAll("#chain tr.selected")) tr.classList.remove("selected");
  const row = document.querySelector(`#chain tr[data-hash="${hash}"]`);
  if (row) row.classList.add("selected");
  $("trace").hidden = false;
  $("trace-title").textContent = `#${index} ${short(hash)}`;
  $("trace-summary").textContent = "asking the peers…";
  let t;
  try {
    t = await api(`/blocks/${hash}/trace?peers=1`);
  } catch (err) {
    $("trace-summary").textContent = err.message;
    $("trace-rows").replaceChildren();
    return;
  }
  if (state.trace !== hash) return; // another block was clicked meanwhile
  const rows = [{ id: state.id, self: true, trace: t }].concat((t.peers || []).map((p) => ({ id: p.id, trace: p.trace, unknown: p.unknown, error: p.error })));
  const known = rows.filter((r) => r.trace);
  const span = Math.max(1, ...known.map((r) => r.trace.delay_ms));
  known.sort((a, b) => a.trace.delay_ms - b.trace.delay_ms);
  const names = new Map(rows.map((r) => [r.id, r.self ? "this node" : "…" + tail(r.id)]));
  const name = (id) => (id === "" ? "typed here" : names.get(id) || "…" + tail(id));
  const body = known.concat(rows.filter((r) => !r.trace)).map((r) => {
    const tr = document.createElement("tr");
    tr.className = (r.self ? "self" : "") + (r.trace ? "" : " unknown");
    tr.dataset.peer = r.id;
    cell(tr, names.get(r.id), null, r.id);
    if (!r.trace) {
      cell(tr, r.unknown ? "no record" : "error: " + (r.error || "?"));
      for (let i = 0; i < 5; i++) cell(tr, "");
      return tr;
    }
    const x = r.trace;
    const seen = cell(tr, `+${x.delay_ms.toFixed(1)} ms`, "num first-seen", new Date(x.first_seen_ms).toISOString());
    seen.dataset.ms = x.first_seen_ms;
    const bar = cell(tr, "", "bar");
    const fill = document.createElement("div");
    fill.className = "barfill";
    fill.style.width = `${Math.max(1, (100 * x.delay_ms) / span)}%`;
    bar.appendChild(fill);
    cell(tr, name(x.from), null, x.from);
    cell(tr, x.via + (x.handle_us ? ` (${(x.handle_us / 1000).toFixed(2)} ms to check)` : ""));
    cell(tr, x.duplicates, "num", (x.copies || []).map((c) => `${name(c.from)} +${c.after_ms.toFixed(1)} ms`).join("\n"));
    cell(tr, (x.forwarded_to || []).map(name).join(", "));
    return tr;
  });
  $("trace-rows").replaceChildren(...body);
  const dups = known.reduce((n, r) => n + r.trace.duplicates, 0);
  $("trace-summary").textContent = `${known.length} of ${rows.length} nodes had it within ${Math.max(0, ...known.map((r) => r.trace.delay_ms)).toFixed(1)} ms; ${(dups / Math.max(1, known.length)).toFixed(1)} duplicates per node`;
}

function renderDrops(drops) {
  const keys = Object.keys(drops).sort();
  const list = $("drops");
  if (!keys.length) {
    list.innerHTML = '<li class="none">nothing</li>';
    return;
  }
  list.replaceChildren(...keys.map((k) => {
    const li = document.createElement("li");
    li.textContent = `${k}: ${drops[k]}`;
    return li;
  }));
}

function renderSync(p) {
  $("sync").hidden = !p || p.done;
  if (!p || p.done) return;
  const total = Math.max(1, p.target - p.from);
  $("sync-bar").value = (p.height - p.from) / total;
  $("sync-text").textContent = `syncing from ${tail(p.peer)}: ${p.height - p.from}/${total} blocks`;
}

async function loadPeers() {
  const peers = (await api("/peers")) || [];
  state.peers = peers;
  renderPeers();
}

function renderPeers() {
  const peers = state.peers;
  $("peer-count").textContent = peers.length ? `(${peers.length})` : "(none)";
  $("peers").replaceChildren(...peers.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.peer = p.id;
    cell(tr, tail(p.id), null, p.id + "\n" + (p.addrs || []).join("\n"));
    cell(tr, (p.direction || "").slice(0, 3) + (p.mesh ? " ·mesh" : ""));
    const [how, conns] = link(p);
    cell(tr, how, "link", conns);
    if (p.head) {
      const d = p.head.height - state.height;
      const text = `#${p.head.height}` + (d < 0 ? ` (${-d} behind)` : d > 0 ? ` (${d} ahead)` : p.head.head === state.head ? " ✓" : " (fork)");
      cell(tr, text, d < 0 ? "behind" : d > 0 ? "ahead" : p.head.head === state.head ? "same" : "behind", p.head.head);
    } else {
      cell(tr, "?");
    }
    cell(tr, p.latency_ms ? p.latency_ms.toFixed(1) + " ms" : "", "num");
    cell(tr, p.score === undefined ? "" : p.score.toFixed(1), "num" + (p.score < 0 ? " neg" : ""));
    // Under the peer's ID, the program and version it runs.
    if (p.agent) tr.firstChild.append(Object.assign(document.createElement("small"), { className: "agent", textContent: p.agent }));
    return tr;
  }));
}

// Debounced reloads: many events may arrive at once.
const timers = {};
function soon(name, fn, ms = 150) {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(() => fn().catch(console.error), ms);
}

function onEvent(type, e) {
  switch (type) {
    case "block": {
      const b = e.block;
      if (b.index > state.height) setHead(b.index, b.hash);
      const top = state.rows.length ? state.rows[state.rows.length - 1] : null;
      if (state.from === null && top && b.prevHash === top.hash) {
        const rows = state.rows.concat([b]).slice(-PAGE);
        renderChain(rows, b.hash);
      } else if (state.from === null) {
        soon("chain", () => loadChain(b.hash));
      }
      soon("status", loadStatus, 500);
      break;
    }
    case "head":
      setHead(e.height || 0, e.head);
      if (state.from === null && (!state.rows.length || state.rows[state.rows.length - 1].hash !== e.head)) soon("chain", loadChain);
      renderPeers();
      soon("peers", loadPeers, 1000); // the node re-asks its peers' heads 0.5 s after its own moves
      break;
    case "peer":
      soon("peers", loadPeers);
      break;
    case "refused":
      soon("status", loadStatus);
      break;
    case "reachability":
      renderReach(e.reachability);
      soon("status", loadStatus);
      soon("peers", loadPeers);
      break;
    case "sync":
      renderSync(e.sync);
      if (e.sync.done) soon("chain", loadChain);
      break;
  }
}

// follow reads GET /events until it ends, then reconnects.
async function follow() {
  for (;;) {
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const resp = await fetch("/events", { headers });
      if (!resp.ok) throw new Error(resp.statusText);
      $("live").className = "live on";
      $("live").textContent = "live";
      await loadStatus();
      await Promise.all([loadChain(), loadPeers()]);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const raw = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let type = "message", data = "";
          for (const line of raw.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) onEvent(type, JSON.parse(data));
        }
      }
    } catch (err) {
      console.warn("event stream:", err);
    }
    $("live").className = "live off";
    $("live").textContent = "reconnecting";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

$("add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("add-data");
  const out = $("add-result");
  try {
    const b = await api("/blocks", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ data: input.value }) });
    out.className = "";
    out.textContent = `#${b.index} ${short(b.hash)} added`;
    input.value = "";
  } catch (err) {
    out.className = "error";
    out.textContent = err.message;
  }
});

$("chain").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr.block");
  if (tr) showTrace(tr.dataset.hash, tr.dataset.index).catch(console.error);
});
$("trace-close").addEventListener("click", () => {
  state.trace = null;
  $("trace").hidden = true;
  for (const tr of document.querySelectorAll("#chain tr.selected")) tr.classList.remove("selected");
});

$("older").addEventListener("click", () => {
  const lo = state.rows.length ? state.rows[0].index : 0;
  state.from = Math.max(0, lo - PAGE);
  loadChain().catch(console.error);
});
$("newer").addEventListener("click", () => {
  const hi = state.rows.length ? state.rows[state.rows.length - 1].index : 0;
  state.from = hi + 1 + PAGE > state.height ? null : hi + 1;
  loadChain().catch(console.error);
});
$("latest").addEventListener("click", () => {
  state.from = null;
  loadChain().catch(console.error);
});
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value;
  sessionStorage.setItem("gossipchain-token", token);
  $("token-form").hidden = true;
});

setInterval(() => {
  for (const td of document.querySelectorAll("td.age")) td.textContent = age(Number(td.dataset.ts));
}, 1000);
setInterval(() => soon("peers", loadPeers), 5000); // scores and latencies change without events
setInterval(() => soon("status", loadStatus), 2000); // the propagation figures

follow();
