// bench/edge/ab.mjs — room kinds measured alternately in ONE `wrangler dev`
// (pinned to CPU 0, loadgen on CPU 1), so a difference between them is not
// a difference between two wrangler starts. Each kind gets a throwaway
// warm-up run first; then PAIRS rounds, the order reversed every round;
// medians of the rate and of the server's CPU per 1,000 units (wrangler +
// both workerd processes, from /proc), and per process for the last round.
//   node bench/edge/ab.mjs [PAIRS=4] [SECONDS=3] [KINDS=wsedge,plain] [connect|broadcast]
// Kinds: wsedge, plain, party (bench/edge/wrangler.toml's three rooms).
// Needs build/wsedge.wasm and build/bench/loadgen (bench/setup).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { standaloneContext, startWrangler } from "./run.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const LOADGEN = path.join(ROOT, "build/bench/loadgen");
const pairs = Number(process.argv[2] || 4), dur = Number(process.argv[3] || 3);
const kinds = (process.argv[4] || "wsedge,plain").split(",");
const scen = process.argv[5] || "connect";
const PATHS = { wsedge: (r) => `/chat/${r}`, plain: (r) => `/plain/chat/${r}`, party: (r) => `/parties/party-rooms/${r}` };
for (const k of kinds) if (!PATHS[k]) throw new Error(`unknown kind ${k} (wsedge, plain, party)`);
const c = standaloneContext(ROOT, "ab-server.log");
const args = (k, room, seconds) => [...(scen === "connect"
  ? ["connect", "--concurrency", "20"]
  : ["broadcast", "--conns", "200", "--senders", "2", "--window", "16", "--size", "32", "--settle", "1", "--open-concurrency", "32"]),
"--url", `ws://127.0.0.1:${port}` + PATHS[k](room), "--duration", String(seconds), "--warmup", "1"];
let port = 0;
function lg(a) {
  return new Promise((resolve) => {
    const ch = spawn("taskset", ["-c", "1", LOADGEN, ...a], { stdio: ["ignore", "pipe", "ignore"] });
    c.track(ch);
    let out = "";
    ch.stdout.on("data", (d) => (out += d));
    const kill = setTimeout(() => ch.kill("SIGKILL"), (dur + 90) * 1000);
    ch.once("exit", () => { clearTimeout(kill); try { resolve(JSON.parse(out.trim().split("\n").pop())); } catch { resolve({ ok: false }); } });
  });
}
const cpuOf = (pids) => pids.map((p) => {
  try { const f = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" "); return (Number(f[11]) + Number(f[12])) / 100; } catch { return 0; }
});
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[(s.length - 1) >> 1]; };

const w = await startWrangler(c, "ab");
port = w.port;
const res = Object.fromEntries(kinds.map((k) => [k, []]));
try {
  for (const k of kinds) await lg(args(k, `warm-${k}`, 2));
  for (let i = 0; i < pairs; i++) {
    for (const k of (i % 2 ? [...kinds].reverse() : kinds)) {
      const c0 = cpuOf(w.pids);
      const r = await lg([...args(k, `r${i}-${k}`, dur), "--server-pid", w.pids.join(","), "--label", k]);
      const per = cpuOf(w.pids).map((v, j) => v - c0[j]);
      const units = r.ok ? r.value * r.wall_s : 0;
      r.per = per.map((d) => (units ? (d / units) * 1e6 : 0));
      res[k].push(r);
      console.log(`${k.padEnd(7)} ${r.ok ? Math.round(r.value) : "FAILED"} ${r.unit || ""}  server CPU ${r.ok ? ((r.server_cpu / r.value) * 1e6).toFixed(1) : "-"} ms/1k` +
        `  (per process, µs/unit: ${r.per.map((x) => x.toFixed(0)).join(" ")})`);
    }
  }
} finally {
  await w.stop();
  c.stopAll();
}
const base = kinds[0];
for (const k of kinds) {
  const g = res[k].filter((r) => r.ok);
  if (!g.length) { console.log(`MEDIAN ${k}: no run succeeded`); continue; }
  const v = med(g.map((r) => r.value)), cpu = med(g.map((r) => (r.server_cpu / r.value) * 1e6));
  const bv = med(res[base].filter((r) => r.ok).map((r) => r.value));
  console.log(`MEDIAN ${k.padEnd(7)} ${Math.round(v)}  server CPU ${cpu.toFixed(1)} ms/1k${k === base ? "" : `  ${base} × ${(bv / v).toFixed(2)}`}`);
}
