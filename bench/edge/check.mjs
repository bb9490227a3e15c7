// bench/edge/check.mjs — the three edge rooms do the same application work.
// Against a running `wrangler dev --config bench/edge/wrangler.toml`:
//   node bench/edge/check.mjs PORT
// For each room kind: a joins, b joins (join events with counts to every
// member), a sends text (message event with id/name/text/ts to both), b
// sends binary (relayed to a only), b leaves (leave event with count to a).
// Exits 1 on the first difference.
import WebSocket from "ws";

const port = process.argv[2];
const KINDS = { wsedge: "/chat/", plain: "/plain/chat/", party: "/parties/party-rooms/" };

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const q = [], waiters = [];
    ws.on("message", (data, isBinary) => {
      const m = isBinary ? { bin: Buffer.from(data) } : { text: data.toString() };
      const w = waiters.shift();
      if (w) w(m); else q.push(m);
    });
    ws.next = () => q.length ? Promise.resolve(q.shift()) : new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`${url}: no message within 5 s`)), 5000);
      waiters.push((m) => { clearTimeout(t); res(m); });
    });
    ws.json = async () => { const m = await ws.next(); if (!m.text) throw new Error("expected text"); return JSON.parse(m.text); };
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function same(what, got, want) {
  for (const [k, v] of Object.entries(want)) {
    if (got[k] !== v) throw new Error(`${what}: ${k} = ${JSON.stringify(got[k])}, expected ${JSON.stringify(v)} (${JSON.stringify(got)})`);
  }
  for (const k of Object.keys(got)) if (!(k in want)) throw new Error(`${what}: unexpected field ${k}`);
}

for (const [kind, prefix] of Object.entries(KINDS)) {
  const room = `check${Date.now()}`;
  const url = (name) => `ws://127.0.0.1:${port}${prefix}${room}?name=${name}`;
  const a = await open(url("a"));
  const ja = await a.json();
  same(`${kind} join a`, ja, { type: "join", id: ja.id, name: "a", count: 1 });
  const b = await open(url("b"));
  const jb = await b.json();
  same(`${kind} join b (to b)`, jb, { type: "join", id: jb.id, name: "b", count: 2 });
  same(`${kind} join b (to a)`, await a.json(), jb);
  a.send("hello");
  for (const m of [a, b]) {
    const ev = await m.json();
    same(`${kind} message`, ev, { type: "message", id: ja.id, name: "a", text: "hello", ts: ev.ts });
    if (typeof ev.ts !== "number") throw new Error(`${kind}: ts is not a number`);
  }
  b.send(Buffer.from([1, 2, 3]));
  const bin = await a.next();
  if (!bin.bin || !bin.bin.equals(Buffer.from([1, 2, 3]))) throw new Error(`${kind}: binary relay`);
  const closed = new Promise((r) => b.once("close", (code) => r(code)));
  b.close(1000);
  if ((await closed) !== 1000) throw new Error(`${kind}: close code`);
  same(`${kind} leave`, await a.json(), { type: "leave", id: jb.id, name: "b", count: 1 });
  a.close(1000);
  console.log(`${kind}: join/message/binary/leave as specified`);
}
process.exit(0);
