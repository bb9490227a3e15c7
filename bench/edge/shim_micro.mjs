// bench/edge/shim_micro.mjs — the Workers shim's own per-upgrade cost (JS +
// wasm), in Node with the runtime objects mocked (WebSocketPair, the Durable
// Object state, sockets whose send() does nothing). It isolates what
// bindings/workers/wsedge.js and the core add per upgrade from what workerd
// and wrangler's proxy cost; the edge benchmark (run.mjs) measures the sum.
//   node bench/edge/shim_micro.mjs [MEMBERS] [WASM]     (defaults 20, build/wsedge.wasm)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const members = Number(process.argv[2] || 20);
const wasm = path.resolve(root, process.argv[3] || "build/wsedge.wasm");
// the shim imports DurableObject from 'cloudflare:workers': give Node a stand-in
const src = fs.readFileSync(path.join(root, "bindings/workers/wsedge.js"), "utf8").replace(
  "import { DurableObject } from 'cloudflare:workers';",
  "class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsedge-shim-"));
fs.writeFileSync(path.join(tmp, "wsedge.mjs"), src);
const wasmModule = new WebAssembly.Module(fs.readFileSync(wasm));

class MockWS {
  constructor() { this.readyState = 1; this.att = null; }
  send() {}
  close() { this.readyState = 3; }
  serializeAttachment(a) { this.att = a; }
  deserializeAttachment() { return this.att; }
  accept() {}
  addEventListener() {}
}
globalThis.WebSocketPair = class { constructor() { this[0] = new MockWS(); this[1] = new MockWS(); } };
globalThis.WebSocketRequestResponsePair = class {};
globalThis.Response = class { constructor(body, init = {}) { this.status = init.status; this.webSocket = init.webSocket; } };

const { WsedgeApp, WebSocketContext, DurableSessions } = await import(path.join(tmp, "wsedge.mjs"));
const app = new WsedgeApp(wasmModule); // the isolate's default app
fs.rmSync(tmp, { recursive: true, force: true });

const sockets = [];
const state = {
  id: "bench", storage: null, setWebSocketAutoResponse() {},
  acceptWebSocket(ws) { sockets.push(ws); }, getWebSockets() { return sockets.slice(); },
};
const ds = new DurableSessions(state);
const reqs = Array.from({ length: 1000 }, (_, i) => new Request(`http://127.0.0.1:8787/chat/c1?name=u${i}`, {
  headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13", Host: "127.0.0.1:8787", "User-Agent": "loadgen" },
}));

async function time(label, iters, fn) {
  for (let i = 0; i < 2000; i++) await fn(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) await fn(i);
  console.log(`${label.padEnd(46)} ${(Number(process.hrtime.bigint() - t) / iters / 1000).toFixed(2)} µs`);
}

await time("Worker: WebSocketContext.fromRequest (validate)", 20000, (i) => WebSocketContext.fromRequest(reqs[i % 1000]));
// the Worker's whole part of an upgrade: route + validate + forward (the
// object's stub answers at once)
const stubEnv = { CHAT_ROOMS: { idFromName: (n) => n, get: () => ({ fetch: async () => new Response(null, { status: 101, webSocket: {} }) }) } };
await time("Worker: app.fetch (route, validate, forward)", 20000, (i) => app.fetch(reqs[i % 1000], stubEnv));
for (let i = 0; i < members - 1; i++) await ds.fetch(reqs[i]);
await time(`Durable Object: upgrade + close, ${members} members`, 20000, async (i) => {
  await ds.fetch(reqs[i % 1000]);
  const ws = sockets.pop();
  ws.readyState = 2;
  ds.webSocketClose(ws, 1000, "");
});

// A wake: a new instance (the constructor runs again), the SessionMap
// restored from every socket's attachment, one text message handled and
// broadcast. Without storage (no SQLite rows to load): the shim's and the
// core's share of what bench/edge/wake.mjs measures in workerd.
const wakeN = Number(process.argv[4] || 1000);
sockets.length = 0;
const room = new DurableSessions(state);
for (let i = 0; i < wakeN; i++) await room.fetch(reqs[i % 1000]);
await time(`Durable Object: wake, restore ${wakeN} + 1 message`, 200, async () => {
  const woken = new DurableSessions(state);
  await woken.webSocketMessage(sockets[0], "hello");
});
