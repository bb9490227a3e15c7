// bench/edge/profile.mjs — a CPU profile of the Worker isolate (V8's
// sampling profiler over wrangler dev's inspector) while loadgen runs one
// scenario against one room kind; prints self and inclusive shares of the
// samples spent in JavaScript, wasm and the runtime calls they make (idle
// and the runtime's own work outside JS are not in it: for those compare
// server CPU with bench/edge/ab.mjs). The .cpuprofile is kept for DevTools.
//   node bench/edge/profile.mjs [wsedge|plain|party] [connect|broadcast] [SECONDS=4]
//   node bench/edge/profile.mjs KIND wake [CYCLES=3] [MEMBERS=1000]: only the
//   woken events (MEMBERS join, then CYCLES times: silent past eviction, the
//   profiler on for one cold message to every member)
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { standaloneContext, startWrangler } from "./run.mjs";
import { EVICT_MS, join, oneMessage } from "./wake.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const kind = process.argv[2] || "wsedge", scen = process.argv[3] || "connect", dur = process.argv[4] || "4";
const PATHS = { wsedge: "/chat/p1", plain: "/plain/chat/p1", party: "/parties/party-rooms/p1" };
if (!PATHS[kind]) throw new Error(`unknown kind ${kind}`);
const c = standaloneContext(ROOT, "profile-server.log");
const w = await startWrangler(c, "profile");
let profile;
try {
  const list = await (await fetch(`http://127.0.0.1:${w.inspector}/json`)).json();
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  let id = 0;
  const pend = new Map();
  ws.on("message", (d) => { const m = JSON.parse(d); if (m.id && pend.has(m.id)) { pend.get(m.id)(m); pend.delete(m.id); } });
  const call = (method, params = {}) => new Promise((r) => { const i = ++id; pend.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 100 });
  const url = `ws://127.0.0.1:${w.port}${PATHS[kind]}`;
  const a = scen === "connect" ? ["connect", "--url", url, "--concurrency", "20"]
    : ["broadcast", "--url", url, "--conns", "200", "--senders", "2", "--window", "16", "--size", "32", "--settle", "1", "--open-concurrency", "32"];
  if (scen === "wake") {
    const marks = new Map();
    const members = await join(`ws://127.0.0.1:${w.port}`, PATHS[kind], Number(process.argv[5] || 1000), marks);
    const nodes = new Map(), samples = [];
    for (let i = 0; i < Number(dur); i++) {
      await c.sleep(EVICT_MS);
      await call("Profiler.start");
      const t = await oneMessage(members, marks, `wake-${kind}-${i}`, 60000);
      const p = (await call("Profiler.stop")).result.profile;
      console.log(`cycle ${i + 1}: first ${t.first.toFixed(1)} ms, last ${t.last.toFixed(1)} ms, ${p.samples.length} samples`);
      // one profile of every cycle: node ids are per profile, so renumber
      const base = nodes.size;
      for (const n of p.nodes) nodes.set(base + n.id, { ...n, id: base + n.id, children: (n.children || []).map((x) => base + x) });
      samples.push(...p.samples.map((x) => base + x));
    }
    for (const m of members) m.terminate();
    profile = { nodes: [...nodes.values()], samples };
  } else {
  await call("Profiler.start");
  await new Promise((r) => {
    const l = spawn("taskset", ["-c", "1", path.join(ROOT, "build/bench/loadgen"), ...a, "--duration", dur, "--warmup", "1"], { stdio: ["ignore", "inherit", "ignore"] });
    c.track(l);
    l.once("exit", r);
  });
  profile = (await call("Profiler.stop")).result.profile;
  }
  ws.close();
} finally {
  await w.stop();
  c.stopAll();
}
const out = path.join(ROOT, `build/bench/profile-${kind}-${scen}.cpuprofile`);
fs.writeFileSync(out, JSON.stringify(profile));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const ch of n.children || []) parent.set(ch, n.id);
const counts = new Map();
for (const s of profile.samples) counts.set(s, (counts.get(s) || 0) + 1);
const name = (cf) => `${cf.functionName || "(anonymous)"}:${cf.lineNumber + 1}`;
const self = new Map(), incl = new Map();
let busy = 0;
for (const [nid, n] of counts) {
  const cf = byId.get(nid).callFrame;
  if (["(idle)", "(program)", "(garbage collector)", "(root)"].includes(cf.functionName)) continue;
  busy += n;
  let k = name(cf);
  if (cf.lineNumber < 0) { const p = byId.get(parent.get(nid)); if (p) k += ` <- ${name(p.callFrame)}`; }
  self.set(k, (self.get(k) || 0) + n);
  const seen = new Set();
  for (let i = nid; i !== undefined; i = parent.get(i)) {
    const key = name(byId.get(i).callFrame);
    if (!seen.has(key)) { seen.add(key); incl.set(key, (incl.get(key) || 0) + n); }
  }
}
const top = (m) => [...m].sort((x, y) => y[1] - x[1]).slice(0, 25).map(([k, v]) => `${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`).join("\n");
const other = {};
for (const [nid, n] of counts) {
  const f = byId.get(nid).callFrame.functionName;
  if (["(program)", "(garbage collector)"].includes(f)) other[f] = (other[f] || 0) + n;
}
console.log(`${kind} ${scen}: ${busy} samples in JS/wasm/runtime calls (line numbers: wrangler's bundle); ` +
  `besides: ${Object.entries(other).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}; ${path.relative(ROOT, out)}`);
console.log(`-- self\n${top(self)}\n-- inclusive\n${top(incl)}`);
