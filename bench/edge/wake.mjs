// bench/edge/wake.mjs — the wake of a hibernated room (issue 15 item 4),
// called by bench/edge/run.mjs against a running `wrangler dev`.
// Per room kind (wsedge ChatRoom, plain-JS room, PartyServer room): MEMBERS
// members join one room; the rooms then stay silent past wrangler dev's 10 s
// eviction, so each object is evicted with its sockets kept open (protocol
// pings do not count as events). Then one member sends a text message: its
// object is built again, its sessions restored (wsedge: one wse_app_restore
// over every attachment; plain JS: deserializeAttachment per socket;
// PartyServer: its connection state), and the message broadcast. Measured
// from the client: send -> the first member has it ("cold": the object was
// built, restored, ran the handler and its output left), and -> the last
// (the fan-out on top); then five more right after, the object awake
// ("warm", their median); cold - warm (first arrivals) is what the wake adds:
// the Durable Object duration a user pays for on every wake, on top of the
// event's own work. Each object's instance count, read after, proves it was
// rebuilt (wsedge: its "wakes" stat; the others: a counter in the bench
// rooms' constructors).
import WebSocket from "ws";

export const KINDS = [
  { key: "wsedge", path: (r) => `/chat/${r}`, built: (r) => `/chat/${r}/stats`, field: "wakes" },
  { key: "plain", path: (r) => `/plain/chat/${r}`, built: (r) => `/plain/chat/${r}?built=1`, field: "built" },
  { key: "party", path: (r) => `/parties/party-rooms/${r}`, built: (r) => `/parties/party-rooms/${r}`, field: "built" },
];
export const EVICT_MS = 12000; // wrangler dev evicts after 10 s without events

export function open(url, marks) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("message", (d, bin) => {
      if (bin || d.length < 20) return;
      const s = d.toString();
      const m = /"text":"(wake-[a-z]+-\d+)"/.exec(s);
      if (m && marks.has(m[1])) marks.get(m[1]).push(performance.now());
    });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

export async function join(base, path, n, marks) {
  const out = [];
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + 50); k++) batch.push(open(`${base}${path}?name=m${k}`, marks));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** One message from members[0]: ms until every member has it. */
export async function oneMessage(members, marks, tag, timeoutMs) {
  const arrivals = [];
  marks.set(tag, arrivals);
  const t0 = performance.now();
  members[0].send(tag);
  const end = Date.now() + timeoutMs;
  while (arrivals.length < members.length) {
    if (Date.now() > end) throw new Error(`${tag}: ${arrivals.length}/${members.length} members got it within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
  marks.delete(tag);
  return { first: Math.min(...arrivals) - t0, last: Math.max(...arrivals) - t0 };
}

/** Every kind's room filled once, then `cycles` times: silent past eviction,
 * one cold message, five warm ones. Returns { kind: [sample per cycle] }. */
export async function measureWake({ port, members, cycles, sleep, log }) {
  const base = `ws://127.0.0.1:${port}`, http = `http://127.0.0.1:${port}`;
  const marks = new Map();
  const rooms = {}, out = Object.fromEntries(KINDS.map((k) => [k.key, []]));
  const mid = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  try {
    for (const k of KINDS) {
      const room = `wake${k.key}${Date.now() % 100000}`;
      rooms[k.key] = { room, ws: await join(base, k.path(room), members, marks) };
      log(`[edge wake] ${k.key}: ${members} members joined`);
    }
    for (let cycle = 1; cycle <= cycles; cycle++) {
      await sleep(EVICT_MS); // every room's last event is at least this old
      for (const k of KINDS) {
        const r = rooms[k.key];
        const cold = await oneMessage(r.ws, marks, `wake-${k.key}-${cycle}0`, 60000);
        const warms = [];
        for (let i = 1; i <= 5; i++) warms.push(await oneMessage(r.ws, marks, `wake-${k.key}-${cycle}${i}`, 60000));
        const warm = { first: mid(warms.map((w) => w.first)), last: mid(warms.map((w) => w.last)) };
        const st = await (await fetch(http + k.built(r.room))).json();
        out[k.key].push({ ok: true, cold, warm, wake: cold.first - warm.first, rebuilt: st[k.field] });
        log(`[edge wake ${cycle}] ${k.key}: cold ${cold.first.toFixed(1)} / ${cold.last.toFixed(1)} ms, ` +
          `warm ${warm.first.toFixed(1)} / ${warm.last.toFixed(1)} ms (first / last member), ` +
          `wake adds ${(cold.first - warm.first).toFixed(1)} ms (${k.field} ${st[k.field]})`);
      }
    }
  } catch (e) {
    for (const k of KINDS) if (!out[k.key].length) out[k.key].push({ ok: false, error: String(e.message || e) });
    log(`[edge wake] ${e.message || e}`);
  } finally {
    for (const r of Object.values(rooms)) for (const ws of r.ws) ws.terminate();
  }
  return out;
}
