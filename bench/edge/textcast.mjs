// bench/edge/textcast.mjs — text broadcasts (the chat case; loadgen's
// broadcast is binary) in one `wrangler dev`, wsedge and plain JS rooms
// alternately: MEMBERS members (npm ws), one sends MSGS chat-like texts with
// 16 in flight (each member, sender included, gets every one); deliveries/s
// (bounded by this one Node client) and the server's CPU per delivery (µs,
// wrangler + workerd from /proc), medians of PAIRS pairs.
//   node bench/edge/textcast.mjs [MEMBERS=200] [MSGS=1500] [PAIRS=3]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { standaloneContext, startWrangler } from "./run.mjs";
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const MEMBERS = Number(process.argv[2] || 200), MSGS = Number(process.argv[3] || 1500), PAIRS = Number(process.argv[4] || 3);
const PATHS = { wsedge: (r) => `/chat/${r}`, plain: (r) => `/plain/chat/${r}` };
const c = standaloneContext(ROOT, "textcast.log");
const w = await startWrangler(c, "textcast");
const cpuOf = (pids) => pids.reduce((s, p) => { try { const f = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" "); return s + (Number(f[11]) + Number(f[12])) / 100; } catch { return s; } }, 0);
async function run(kind, room) {
  const url = `ws://127.0.0.1:${w.port}${PATHS[kind](room)}`;
  const socks = [];
  let got = 0;
  const sendDone = [];
  for (let i = 0; i < MEMBERS; i += 25) {
    const batch = [];
    for (let k = i; k < Math.min(MEMBERS, i + 25); k++) batch.push(new Promise((res, rej) => {
      const ws = new WebSocket(`${url}?name=m${k}`, { perMessageDeflate: false });
      ws.on("message", (d) => { const s = d.toString(); if (s.includes('"text":"t')) { got++; if (k === 0) { const f = sendDone.shift(); f && f(); } } });
      ws.once("open", () => res(ws)); ws.once("error", rej);
    }));
    socks.push(...(await Promise.all(batch)));
  }
  await c.sleep(500);
  const sender = socks[0];
  const c0 = cpuOf(w.pids), t0 = performance.now();
  let inflight = 0, sent = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (inflight < 16 && sent < MSGS) {
        inflight++; sent++;
        sendDone.push(() => { inflight--; if (sent >= MSGS && inflight === 0) resolve(); else pump(); });
        sender.send(`t${sent} hello there, this is a chat message of some length`);
      }
    };
    pump();
  });
  while (got < MSGS * MEMBERS && performance.now() - t0 < 60000) await c.sleep(5);
  const cpu = cpuOf(w.pids) - c0, secs = (performance.now() - t0) / 1000;
  for (const s of socks) s.terminate();
  return { deliveries: got, rate: got / secs, cpuPerK: (cpu / got) * 1e6 }; // cpuPerK: µs per delivery
}
try {
  for (const k of ["wsedge", "plain"]) await run(k, "warm" + k);
  const res = { wsedge: [], plain: [] };
  for (let i = 0; i < PAIRS; i++) for (const k of i % 2 ? ["plain", "wsedge"] : ["wsedge", "plain"]) {
    const r = await run(k, `r${i}${k}`);
    res[k].push(r);
    console.log(k.padEnd(7), Math.round(r.rate), "deliveries/s,", r.cpuPerK.toFixed(1), "µs server CPU per delivery");
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  for (const k of ["wsedge", "plain"]) console.log("MEDIAN", k, Math.round(med(res[k].map((r) => r.rate))), med(res[k].map((r) => r.cpuPerK)).toFixed(1));
} finally { await w.stop(); c.stopAll(); }
