// bench/runner.mjs — runs the benchmark matrix and writes bench/RESULTS.md.
// Started by bench/run (which raises the fd limit and runs bench/setup).
//
// For every round, scenario and server: a fresh server pinned to CPU 0, the
// load generator pinned to CPU 1, one bounded loadgen run, the server stopped
// by its PID. Figures are medians over the rounds; CPU and latency columns
// come from the median run. Nothing here is a test: no assertions on time.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LOADGEN = path.join(ROOT, "build/bench/loadgen");
const WSEDGE = path.join(ROOT, "build/wsedge");

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(name);
if (flag("--help")) {
  console.log(`usage: bench/run [options]
  --quick              smoke run: 1 round, 1 s, small N; writes build/bench/RESULTS.quick.md
  --rounds N           rounds per (scenario, server), default 3
  --duration S         measured seconds per run, default 5
  --servers LIST       subset of wsedge,bun,node,axum,tcp (default: all available)
  --scenarios LIST     subset of echo32,echo4k,connect,broadcast,idle,echo-deflate,broadcast-deflate
  --no-edge            skip the wrangler dev benchmark
  --edge-only          only the wrangler dev benchmark
  --no-cluster         skip the cluster benchmark (two processes on Redis)
  --cluster-only       only the cluster benchmark
  --out FILE           results file (default bench/RESULTS.md)`);
  process.exit(0);
}
const QUICK = flag("--quick");
const ROUNDS = Number(opt("--rounds", QUICK ? 1 : 3));
const DURATION = Number(opt("--duration", QUICK ? 1 : 5));
const WARMUP = QUICK ? 0.3 : 1;
const OUT = path.resolve(ROOT, opt("--out", QUICK ? "build/bench/RESULTS.quick.md" : "bench/RESULTS.md"));
const RUNLOG = path.join(ROOT, "build/bench/runs.jsonl");
const SERVER_LOG = path.join(ROOT, "build/bench/server.log");
const CLUSTER_ONLY = flag("--cluster-only");
const EDGE = !flag("--no-edge") && !CLUSTER_ONLY;
const NATIVE = !flag("--edge-only") && !CLUSTER_ONLY;
const CLUSTER = (NATIVE && !flag("--no-cluster")) || CLUSTER_ONLY;
const N_IDLE = QUICK ? 2000 : 10000;
const N_BCAST = QUICK ? 100 : 500;

const ncpu = os.cpus().length;
const PIN = ncpu >= 2;
const SERVER_CPU = "0";
const CLIENT_CPU = "1";
// connect is client-heavy (a handshake per cycle on both sides): where the
// machine has 4 cores the load generator gets two of them and two threads.
const CONNECT_THREADS = ncpu >= 4 ? 2 : 1;
const CONNECT_CLIENT_CPUS = ncpu >= 4 ? "1-2" : CLIENT_CPU;

// ---------------------------------------------------------------- helpers
// Every process we start, so an interrupted run stops exactly those (a
// process group for wrangler dev, which starts workerd), never by name.
const LIVE = new Map(); // pid -> { group }
function track(child, group = false) {
  LIVE.set(child.pid, { group });
  child.once("exit", () => LIVE.delete(child.pid));
}
function killLive() {
  for (const [pid, { group }] of LIVE) {
    try { process.kill(group ? -pid : pid, "SIGKILL"); } catch { /* gone */ }
  }
}
for (const [sig, n] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]]) {
  process.once(sig, () => { console.error(`bench: ${sig}, stopping the processes it started`); killLive(); process.exit(128 + n); });
}
process.on("exit", killLive);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[(s.length - 1) >> 1] : NaN; // lower median for even counts
};
const sh = (cmd, args, o = {}) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10000, ...o }).trim();
  } catch {
    return "";
  }
};
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
  });
}
function pinned(cpu, cmd, args) {
  return PIN ? ["taskset", ["-c", cpu, cmd, ...args]] : [cmd, args];
}
const logFd = () => fs.openSync(SERVER_LOG, "a");

// Start a server; resolve { child, pid, port } once its port accepts.
async function startServer(def, port, deflate) {
  const [cmd, args] = pinned(SERVER_CPU, def.cmd, def.args(port, deflate));
  const fd = logFd();
  fs.writeSync(fd, `\n==== ${new Date().toISOString()} ${def.name}: ${cmd} ${args.join(" ")}\n`);
  const child = spawn(cmd, args, { cwd: def.cwd || ROOT, stdio: ["ignore", fd, fd], env: { ...process.env, ...(def.env || {}) } });
  track(child);
  fs.closeSync(fd);
  let exited = null;
  child.once("exit", (code, sig) => { exited = { code, sig }; });
  const t0 = Date.now();
  while (Date.now() - t0 < (def.startTimeoutMs || 15000)) {
    if (exited) throw new Error(`${def.name} exited during start (${JSON.stringify(exited)}); see ${SERVER_LOG}`);
    if (await canConnect(port)) return { child, pid: child.pid, port, exited: () => exited };
    await sleep(50);
  }
  stopServer({ child });
  throw new Error(`${def.name} did not listen on ${port} within the start timeout`);
}

// Stop only the process we started: SIGTERM, then SIGKILL after 5 s.
async function stopServer(s) {
  const { child } = s;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5000);
  await done;
  clearTimeout(t);
}

// Loopback health: backlog drops (all CPUs), TCP retransmitted segments and
// retransmission timeouts. Spurious tail-loss probes make up most retransmits
// on a busy loopback and cost nothing; RTOs (TCPTimeouts) and drops stall a
// connection for 200 ms+. Counters are machine-wide: other traffic counts too.
function netCounters() {
  let drops = 0, retrans = 0, rto = 0;
  try {
    for (const l of fs.readFileSync("/proc/net/softnet_stat", "utf8").trim().split("\n")) drops += parseInt(l.split(/\s+/)[1], 16);
  } catch {}
  try {
    const t = fs.readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Tcp:"));
    const k = t[0].split(/\s+/), v = t[1].split(/\s+/);
    retrans = Number(v[k.indexOf("RetransSegs")]);
  } catch {}
  try {
    const t = fs.readFileSync("/proc/net/netstat", "utf8").split("\n").filter((l) => l.startsWith("TcpExt:"));
    const k = t[0].split(/\s+/), v = t[1].split(/\s+/);
    rto = Number(v[k.indexOf("TCPTimeouts")]);
  } catch {}
  return { drops, retrans, rto };
}

// One loadgen run; resolves the parsed JSON line (or an error object).
function loadgen(args, hardSeconds, cpus = CLIENT_CPU) {
  const n0 = netCounters();
  return new Promise((resolve) => {
    const [cmd, a] = pinned(cpus, LOADGEN, args);
    const child = spawn(cmd, a, { stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), hardSeconds * 1000);
    child.once("exit", (code) => {
      clearTimeout(killer);
      const line = out.trim().split("\n").pop() || "";
      let r;
      try { r = JSON.parse(line); } catch { r = { ok: false, error: `no result (exit ${code})` }; }
      if (err.trim()) r.stderr = err.trim().split("\n").slice(0, 5).join(" | ");
      r.cmd = `loadgen ${args.join(" ")}`;
      const n1 = netCounters();
      r.net = { drops: n1.drops - n0.drops, retrans: n1.retrans - n0.retrans, rto: n1.rto - n0.rto };
      resolve(r);
    });
  });
}

// ---------------------------------------------------------------- servers
function wsedgeArgs() {
  const help = sh(WSEDGE, ["--help"]) + sh(WSEDGE, ["serve", "--help"]);
  return help.includes("--log-level") ? ["--log-level", "error"] : [];
}
const BUN = fs.existsSync(path.join(ROOT, "bench/node_modules/bun/bin/bun.exe"))
  ? path.join(ROOT, "bench/node_modules/bun/bin/bun.exe")
  : path.join(ROOT, "bench/node_modules/.bin/bun");

const SERVERS = {
  wsedge: {
    name: "wsedge", title: "wsedge (--threads 1)", cmd: WSEDGE,
    args: (p) => ["serve", "--listen", `127.0.0.1:${p}`, "--threads", "1", ...WSEDGE_EXTRA],
    available: () => fs.existsSync(WSEDGE),
  },
  bun: {
    name: "bun", title: "Bun (uWebSockets)", cmd: BUN,
    args: (p, deflate) => [path.join(ROOT, "bench/peers/bun_server.js"), String(p), ...(deflate ? ["deflate"] : [])],
    available: () => fs.existsSync(BUN),
  },
  node: {
    name: "node", title: "Node ws", cmd: process.execPath, cwd: path.join(ROOT, "bench"),
    args: (p, deflate) => [path.join(ROOT, "bench/peers/node_ws_server.mjs"), String(p), ...(deflate ? ["deflate"] : [])],
    available: () => fs.existsSync(path.join(ROOT, "bench/node_modules/ws")),
  },
  axum: {
    name: "axum", title: "Axum (tokio-tungstenite)", cmd: path.join(ROOT, "build/bench/axum-target/release/wsedge-bench-axum"),
    args: (p) => [String(p)],
    available: () => fs.existsSync(path.join(ROOT, "build/bench/axum-target/release/wsedge-bench-axum")),
    only: ["echo32", "echo4k", "connect", "broadcast", "idle"], // built without compression
  },
  tcp: {
    name: "tcp", title: "raw TCP echo (C)", cmd: path.join(ROOT, "build/bench/tcp_echo"), raw: true,
    args: (p) => [String(p)],
    available: () => fs.existsSync(path.join(ROOT, "build/bench/tcp_echo")),
    only: ["echo32", "echo4k", "idle"], // no WebSocket, so no compression either
  },
};
let WSEDGE_EXTRA = [];

// ---------------------------------------------------------------- scenarios
const common = () => ["--duration", String(DURATION), "--warmup", String(WARMUP)];
const SCENARIOS = {
  echo32: {
    title: "Echo, 100 connections × 32 B × 16 in flight", unit: "msgs/s", higher: true,
    args: (s) => ["echo", "--url", `ws://127.0.0.1:${s.port}/ws`, "--conns", "100", "--inflight", "16", "--size", "32", ...common()],
    target: { peer: "bun", ratio: 1.2, text: "≥ 1.2× Bun" }, target2: { peer: "tcp", ratio: null },
  },
  echo4k: {
    title: "Echo, 100 connections × 4 KiB × 4 in flight", unit: "msgs/s", higher: true,
    args: (s) => ["echo", "--url", `ws://127.0.0.1:${s.port}/ws`, "--conns", "100", "--inflight", "4", "--size", "4096", ...common()],
    target: { peer: "bun", ratio: 1.5, text: "≥ 1.5× Bun" }, target2: { peer: "tcp", ratio: 0.65, text: "≥ 0.65× raw TCP" },
  },
  connect: {
    title: "Connect + handshake + close handshake, concurrency 50", unit: "cycles/s", higher: true,
    args: (s) => ["connect", "--url", `ws://127.0.0.1:${s.port}/ws`, "--concurrency", "50",
      "--threads", String(CONNECT_THREADS), ...common()],
    clientCpus: CONNECT_CLIENT_CPUS,
    // both sides can be client-bound here: compare the server's own cost too
    cpuPer: 1000,
    target: { peer: "bun", ratio: 1.2, text: "≥ 1.2× Bun" },
  },
  broadcast: {
    title: `Broadcast, ${N_BCAST} members in one room, 2 senders × 32 B binary (window 32 per sender)`, unit: "deliveries/s", higher: true,
    args: (s) => ["broadcast", "--url", `ws://127.0.0.1:${s.port}/chat/bench`, "--conns", String(N_BCAST), "--senders", "2",
      "--window", "32", "--size", "32", "--settle", QUICK ? "0.3" : "1", ...common()],
    target: { peer: "bun", ratio: 1.0, text: "≥ 1.0× Bun" },
  },
  idle: {
    title: `Idle connections: server RSS per connection, ${N_IDLE} connections (each did one 32 B echo)`, unit: "KB/conn", higher: false,
    args: (s) => ["idle", "--url", `ws://127.0.0.1:${s.port}/ws`, "--conns", String(N_IDLE), "--settle", QUICK ? "0.5" : "1",
      "--open-concurrency", "128"],
    target: { abs: 1.0, text: "≤ 1 KB per connection" },
  },
  "echo-deflate": {
    title: "Echo with permessage-deflate, 100 connections × 1 KiB chat-like text × 4 in flight", unit: "msgs/s", higher: true, deflate: true,
    args: (s) => ["echo", "--deflate", "--text", "--url", `ws://127.0.0.1:${s.port}/ws`, "--conns", "100", "--inflight", "4", "--size", "1024", ...common()],
  },
  "broadcast-deflate": {
    title: `Broadcast with permessage-deflate, ${N_BCAST} members, 2 senders × 512 B chat-like binary (window 32 per sender)`, unit: "deliveries/s", higher: true, deflate: true,
    args: (s) => ["broadcast", "--deflate", "--url", `ws://127.0.0.1:${s.port}/chat/bench`, "--conns", String(N_BCAST), "--senders", "2",
      "--window", "32", "--size", "512", "--settle", QUICK ? "0.3" : "1", ...common()],
  },
};

// ---------------------------------------------------------------- versions
function lockv(crate) {
  try {
    const lock = fs.readFileSync(path.join(ROOT, "bench/peers/axum/Cargo.lock"), "utf8");
    return (new RegExp(`name = "${crate}"\\nversion = "([^"]+)"`).exec(lock) || [])[1] || "?";
  } catch { return "?"; }
}
function versions() {
  const pkgv = (p) => { try { return JSON.parse(fs.readFileSync(path.join(ROOT, p), "utf8")).version; } catch { return "?"; } };
  const cpu = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) || [])[1] || "?";
  const mhz = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/cpu MHz\s*:\s*(.*)/) || [])[1];
  const rd = (f) => { try { return fs.readFileSync(f, "utf8").trim(); } catch { return "?"; } };
  return {
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(" "),
    backlog: rd("/proc/sys/net/core/netdev_max_backlog"),
    cc_algo: rd("/proc/sys/net/ipv4/tcp_congestion_control"),
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    nproc: ncpu,
    cpu: mhz ? `${cpu} (${Math.round(Number(mhz))} MHz)` : cpu,
    mem: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
    wsedge: fs.existsSync(WSEDGE) ? sh(WSEDGE, ["--version"]) || "?" : "not built",
    bun: sh(BUN, ["--version"]) || "?",
    node: process.version,
    ws: pkgv("bench/node_modules/ws/package.json"),
    wrangler: pkgv("node_modules/wrangler/package.json"),
    partyserver: pkgv("bench/node_modules/partyserver/package.json"),
    axum: lockv("axum"), tungstenite: lockv("tokio-tungstenite"), rustc: sh("rustc", ["--version"]) || "not installed",
    cc: (sh("cc", ["--version"]).split("\n")[0] || "?"),
    commit: sh("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
  };
}

// ---------------------------------------------------------------- native matrix
async function runNative(results) {
  const want = (opt("--servers", "wsedge,bun,node,axum,tcp")).split(",").filter(Boolean);
  const scen = (opt("--scenarios", Object.keys(SCENARIOS).join(","))).split(",").filter(Boolean);
  const servers = want.map((n) => SERVERS[n]).filter((d) => {
    if (!d) return false;
    if (!d.available()) { results.notes.push(`${d.title}: not available (not built/installed), skipped.`); return false; }
    return true;
  });
  if (SERVERS.wsedge.available()) WSEDGE_EXTRA = wsedgeArgs();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const sc of scen) {
      const S = SCENARIOS[sc];
      if (!S) throw new Error(`unknown scenario ${sc}`);
      for (const def of servers) {
        if (def.only && !def.only.includes(sc)) continue;
        const port = await freePort();
        let srv;
        try {
          srv = await startServer(def, port, !!S.deflate);
        } catch (e) {
          record(results, sc, def.name, { ok: false, error: String(e.message || e) }, round);
          continue;
        }
        const args = [...S.args(srv), "--server-pid", String(srv.pid), "--label", def.name];
        if (def.raw) args.splice(1, 0, "--raw");
        const hard = DURATION + WARMUP + 90;
        const r = await loadgen(args, hard, S.clientCpus);
        if (srv.exited()) r.server_exit = srv.exited();
        await stopServer(srv);
        record(results, sc, def.name, r, round);
      }
    }
  }
}

function record(results, sc, server, r, round) {
  r.round = round;
  r.scenario_key = sc;
  r.server = server;
  fs.appendFileSync(RUNLOG, JSON.stringify(r) + "\n");
  ((results.runs[sc] ||= {})[server] ||= []).push(r);
  const v = r.ok ? `${fmt(r.value)} ${r.unit}` : `FAILED: ${r.error}`;
  const cpu = r.client_cpu !== undefined ? ` (client cpu ${r.client_cpu}, server cpu ${r.server_cpu}, ${r.bound})` : "";
  console.error(`[round ${round}] ${sc} ${server}: ${v}${cpu}${r.stderr && !r.ok ? " — " + r.stderr : ""}`);
}

// ---------------------------------------------------------------- edge
async function runEdge(results) {
  const edgeRun = path.join(ROOT, "bench/edge/run.mjs");
  if (!fs.existsSync(edgeRun)) { results.notes.push("Edge benchmark: bench/edge/run.mjs missing, skipped."); return; }
  const mod = await import(edgeRun);
  results.edge = await mod.runEdge({
    root: ROOT, rounds: ROUNDS, duration: DURATION, warmup: WARMUP, quick: QUICK,
    loadgen, freePort, canConnect, pinned, stopServer, serverLog: SERVER_LOG, sleep, track,
    SERVER_CPU, CLIENT_CPU, median, log: (m) => console.error(m),
  });
}

async function runClusterBench(results) {
  const mod = await import(path.join(ROOT, "bench/cluster.mjs"));
  results.cluster = await mod.runCluster({
    root: ROOT, rounds: ROUNDS, duration: DURATION, warmup: WARMUP, quick: QUICK,
    loadgen, freePort, canConnect, pinned, stopServer, serverLog: SERVER_LOG, sleep, track,
    SERVER_CPU, CLIENT_CPU, median, log: (m) => console.error(m),
  });
}

// ---------------------------------------------------------------- report
function fmt(v, unit) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  if (unit === "KB/conn") return v.toFixed(2);
  if (v >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return v.toFixed(1);
}
const pct = (x) => (typeof x === "number" && x >= 0 ? `${Math.round(x * 100)}%` : "—");

function summarize(runs) {
  const good = runs.filter((r) => r.ok);
  if (!good.length) return { ok: false, error: runs.map((r) => r.error).filter(Boolean)[0] || "no runs", runs };
  const m = median(good.map((r) => r.value));
  const mr = good.find((r) => r.value === m);
  return { ok: true, value: m, run: mr, runs, n: good.length, failed: runs.length - good.length };
}

function report(results, V) {
  const L = [];
  L.push("# wsedge benchmarks");
  L.push("");
  L.push(`Generated by \`make bench\` (bench/run) on ${V.date}${QUICK ? " — **QUICK SMOKE RUN: 1 round, short runs, small N; not benchmark figures**" : ""}.`);
  L.push("");
  L.push("## Machine and versions");
  L.push("");
  L.push(`| | |\n|---|---|`);
  L.push(`| machine | ${V.nproc} CPUs, ${V.cpu}, ${V.mem} RAM, Linux ${V.kernel} |`);
  L.push(`| load average at start | ${V.loadavg}${Number(V.loadavg.split(" ")[0]) > 0.5 ? " — **the machine was not quiet; figures are noisy**" : ""} |`);
  L.push(`| loopback | net.core.netdev_max_backlog ${V.backlog}, tcp_congestion_control ${V.cc_algo} |`);
  L.push(`| wsedge | ${V.wsedge} (commit ${V.commit}), built with ${V.cc} |`);
  L.push(`| Bun | ${V.bun} (npm \`bun\`, uWebSockets underneath) |`);
  L.push(`| Node / ws | ${V.node} / ws ${V.ws} (no bufferutil/utf-8-validate addons) |`);
  L.push(`| Axum / tokio-tungstenite | ${V.axum} / ${V.tungstenite} (${V.rustc}; tokio current-thread runtime, default buffers) |`);
  L.push(`| wrangler / partyserver | ${V.wrangler} / ${V.partyserver} |`);
  L.push("");
  L.push("## Method");
  L.push("");
  L.push(`- Server pinned to CPU ${SERVER_CPU}, load generator (build/bench/loadgen, C, epoll, one thread) to CPU ${CLIENT_CPU}${PIN ? "" : " — NOT pinned: fewer than 2 CPUs"}; connect: ${CONNECT_THREADS} loadgen thread(s) on CPU ${CONNECT_CLIENT_CPUS} (two on a machine with 4+ cores), and the server's CPU per 1,000 cycles beside the rate.`);
  L.push("  **wsedge runs with `--threads 1`**: one event loop on its one pinned core, the same single core every peer gets.");
  L.push(`- A fresh server per run; ${ROUNDS} round(s) per (scenario, server), interleaved; the figure is the median, and CPU/latency columns come from the median run. ${DURATION} s measured after ${WARMUP} s warm-up.`);
  L.push("- The load generator is a full RFC 6455 client: random Sec-WebSocket-Key (getrandom), Sec-WebSocket-Accept checked, every frame masked with a fresh mask, every payload verified (content and order). A run with any protocol or verification error is reported as failed, never as a figure.");
  L.push("- CPU = CPU time / wall time over the measured window (server from /proc/PID/stat, all threads; client from getrusage). **client-bound** marks runs where the load generator used ≥ 90% of its core: there the figure is a lower bound for the server and ratios say little.");
  L.push("- \"wsedge ×\" = how many times better wsedge is than that server (throughput: wsedge ÷ server; memory: server ÷ wsedge). > 1 means wsedge is ahead.");
  L.push("- bench/run raises net.core.netdev_max_backlog to 30000 for the run (restored after): with the default 1000, loopback bursts from hundreds of connections are dropped and each drop costs a 200 ms+ retransmission timeout. Retransmission timeouts (200 ms+ stalls) and backlog drops seen during a run are flagged as noise in its note; all counters are in build/bench/runs.jsonl.");
  L.push("- Raw TCP echo: the same masked frames echoed back byte for byte by a single-threaded epoll server in C (bench/peers/tcp_echo.c): the physical limit of this machine's loopback for the same byte counts.");
  L.push("");
  for (const [sc, S] of Object.entries(SCENARIOS)) {
    const byServer = results.runs[sc];
    if (!byServer) continue;
    const sums = Object.fromEntries(Object.entries(byServer).map(([k, v]) => [k, summarize(v)]));
    const w = sums.wsedge;
    L.push(`## ${S.title}`);
    L.push("");
    const lat = sc !== "idle";
    L.push(`| server | ${S.unit} | wsedge × | ${lat ? "p50 / p99 / p99.9 latency (µs) | " : ""}server CPU | client CPU | note |`);
    L.push(`|---|---:|---:|${lat ? "---|" : ""}---:|---:|---|`);
    for (const [name, s] of Object.entries(sums)) {
      const title = SERVERS[name]?.title || name;
      if (!s.ok) {
        L.push(`| ${title} | failed | — |${lat ? " — |" : ""} — | — | ${escapeMd(s.error)} |`);
        continue;
      }
      const r = s.run;
      let ratio = "—";
      if (w && w.ok && name !== "wsedge") {
        const x = S.higher ? w.value / s.value : s.value / w.value;
        ratio = Number.isFinite(x) ? x.toFixed(2) : "—";
      }
      const l = r.lat_us ? `${r.lat_us.p50} / ${r.lat_us.p99} / ${r.lat_us.p999}` : "—";
      const notes = [];
      if (r.bound === "client-bound" || r.bound === "both") notes.push("**client-bound**");
      if (s.failed) notes.push(`${s.failed} of ${s.runs.length} runs failed`);
      const tot = (f) => s.runs.reduce((a, x) => a + (x.net?.[f] || 0), 0);
      if (tot("rto") || tot("drops")) notes.push(`**noise**: ${tot("rto")} TCP retransmission timeouts, ${tot("drops")} backlog drops during these runs`);
      if (sc === "idle" && r.kb_per_conn_marginal >= 0) notes.push(`marginal ${r.kb_per_conn_marginal.toFixed(2)} KB (growth from ${N_IDLE / 10} to ${N_IDLE} conns); RSS ${r.rss_before_kb} → ${r.rss_after_kb} KB`);
      if (sc.startsWith("broadcast") && r.messages_per_s) notes.push(`${fmt(r.messages_per_s)} msgs/s fanned out`);
      if (S.cpuPer && r.server_cpu > 0 && s.value > 0) notes.push(`server CPU ${cpuPer(r.server_cpu, s.value, S.cpuPer).toFixed(1)} ms per ${S.cpuPer.toLocaleString("en-US")} cycles`);
      if (S.deflate && r.wire_in_per_msg) notes.push(`wire per msg: ${r.wire_out_per_msg} B sent, ${r.wire_in_per_msg} B received`);
      const vals = s.runs.filter((x) => x.ok).map((x) => fmt(x.value, S.unit)).join(", ");
      if (s.runs.length > 1) notes.push(`runs: ${vals}`);
      L.push(`| ${title} | ${fmt(s.value, S.unit)} | ${ratio} |${lat ? ` ${l} |` : ""} ${sc === "idle" ? "—" : pct(r.server_cpu)} | ${sc === "idle" ? "—" : pct(r.client_cpu)} | ${notes.join("; ")} |`);
    }
    L.push("");
    L.push(targetLine(S, sums));
    L.push("");
  }
  if (results.cluster) L.push(...results.cluster.markdown, "");
  if (results.edge) L.push(...results.edge.markdown, "");
  if (results.notes.length) {
    L.push("## Notes from this run");
    L.push("");
    for (const n of results.notes) L.push(`- ${n}`);
    L.push("");
  }
  const notesFile = path.join(ROOT, "bench/NOTES.md");
  if (fs.existsSync(notesFile)) {
    L.push("## Profiles and notes (kept by hand in bench/NOTES.md)");
    L.push("");
    L.push(fs.readFileSync(notesFile, "utf8").replace(/^# .*\n/, "").trim());
    L.push("");
  }
  L.push(`Raw per-run JSON lines: build/bench/runs.jsonl (not committed). Reproduce: \`make bench\` (or \`bench/run --help\`).`);
  return L.join("\n") + "\n";
}

// Server CPU milliseconds per `per` units: CPU fraction over the run ÷ rate.
function cpuPer(cpuFraction, ratePerS, per) { return (cpuFraction / ratePerS) * per * 1000; }

function escapeMd(s) { return String(s || "").replace(/\|/g, "\\|").slice(0, 200); }

function targetLine(S, sums) {
  if (!S.target) return "No target: reported for CPU and bytes on the wire (issue 9). Compression as each server does it: Bun compresses every send/publish, ws with threshold 64 B, wsedge with its defaults; the client offers permessage-deflate with client_no_context_takeover.";
  const w = sums.wsedge;
  if (!w || !w.ok) return `Target: ${[S.target?.text, S.target2?.text].filter(Boolean).join("; ")} — not measured (wsedge ${w ? "failed" : "not run"}).`;
  const parts = [];
  for (const t of [S.target, S.target2]) {
    if (!t || !t.text) continue;
    if (t.abs !== undefined) {
      parts.push(`${t.text}: ${w.value.toFixed(2)} KB — **${w.value <= t.abs ? "met" : "missed"}**`);
      continue;
    }
    const p = sums[t.peer];
    if (!p || !p.ok) { parts.push(`${t.text}: no ${t.peer} figure`); continue; }
    const x = w.value / p.value;
    const cb = [w.run, p.run].some((r) => r.bound === "client-bound" || r.bound === "both");
    parts.push(`${t.text}: ${x.toFixed(2)}× — **${x >= t.ratio ? "met" : "missed"}**${cb ? " (a side was client-bound)" : ""}`);
    if (S.cpuPer && w.run.server_cpu > 0 && p.run.server_cpu > 0) {
      const cw = cpuPer(w.run.server_cpu, w.value, S.cpuPer), cp = cpuPer(p.run.server_cpu, p.value, S.cpuPer);
      parts.push(`server CPU per ${S.cpuPer.toLocaleString("en-US")} cycles: wsedge ${cw.toFixed(1)} ms, ${t.peer} ${cp.toFixed(1)} ms (${(cp / cw).toFixed(2)}× less for wsedge)`);
    }
  }
  return `Target: ${parts.join("; ")}.`;
}

// ---------------------------------------------------------------- main
async function main() {
  fs.mkdirSync(path.join(ROOT, "build/bench"), { recursive: true });
  fs.writeFileSync(RUNLOG, "");
  fs.writeFileSync(SERVER_LOG, "");
  if (!fs.existsSync(LOADGEN)) throw new Error("build/bench/loadgen missing: run bench/setup");
  const results = { runs: {}, notes: [], edge: null };
  const V = versions();
  console.error(`bench: ${ROUNDS} round(s), ${DURATION} s per run, pinned=${PIN}; output ${path.relative(ROOT, OUT)}`);
  const t0 = Date.now();
  if (NATIVE) await runNative(results);
  if (CLUSTER) {
    try { await runClusterBench(results); } catch (e) { results.notes.push(`Cluster benchmark failed: ${escapeMd(e.message || e)}`); console.error(e); }
  }
  if (EDGE) {
    try { await runEdge(results); } catch (e) { results.notes.push(`Edge benchmark failed: ${escapeMd(e.message || e)}`); console.error(e); }
  }
  results.notes.push(`Total run time ${Math.round((Date.now() - t0) / 1000)} s.`);
  fs.writeFileSync(OUT, report(results, V));
  console.error(`bench: wrote ${path.relative(ROOT, OUT)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
