// bench/edge/run.mjs — the edge benchmark, called by bench/runner.mjs.
// One `wrangler dev` per round (bench/edge/wrangler.toml: the product's
// Worker + ChatRoom, a plain-JS hibernating room, a PartyServer room), pinned
// to CPU 0 with workerd; bench/loadgen on CPU 1 measures, per room kind,
// broadcast deliveries/s with 200 members and upgrades/s (connect + close
// handshake through Worker -> Durable Object). Stopped by its process group.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { measureWake } from "./wake.mjs";

const KINDS = [
  { key: "wsedge", title: "wsedge ChatRoom (wasm core)", path: (room) => `/chat/${room}` },
  { key: "plain", title: "plain JS hibernation room", path: (room) => `/plain/chat/${room}` },
  { key: "party", title: "PartyServer room (hibernate: true)", path: (room) => `/parties/party-rooms/${room}` },
];

function descendants(pid) {
  const kids = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) || []));
  return out;
}

// The context startWrangler needs, for a tool run on its own (ab.mjs,
// profile.mjs, the standalone wake): wrangler dev pinned to CPU 0 unless
// pin is false, the log under build/bench. Every child it is handed is
// stopped by c.stopAll() (wrangler's whole process group), which also runs
// when the tool exits or is interrupted, however it ends.
export function standaloneContext(root, logName, pin = true) {
  fs.mkdirSync(path.join(root, "build/bench"), { recursive: true });
  const live = new Map(); // child -> its own process group
  const stopAll = () => {
    for (const [ch, group] of live) try { process.kill(group ? -ch.pid : ch.pid, "SIGKILL"); } catch { /* gone */ }
    live.clear();
  };
  process.once("exit", stopAll);
  for (const [sig, n] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGPIPE", 13]]) process.once(sig, () => { stopAll(); process.exit(128 + n); });
  return {
    root, SERVER_CPU: "0", serverLog: path.join(root, "build/bench", logName), stopAll,
    freePort: () => import("node:net").then((m) => new Promise((res) => {
      const s = m.createServer();
      s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
    })),
    pinned: (cpu, cmd, args) => (pin ? ["taskset", ["-c", cpu, cmd, ...args]] : [cmd, args]),
    track: (ch, group = false) => { live.set(ch, group); ch.once("exit", () => live.delete(ch)); },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  };
}

export async function startWrangler(c, round) {
  const port = await c.freePort();
  const inspector = await c.freePort();
  const persist = fs.mkdtempSync(path.join(os.tmpdir(), "wsedge-bench-wrangler-"));
  const wrangler = path.join(c.root, "node_modules/wrangler/bin/wrangler.js");
  const [cmd, args] = c.pinned(c.SERVER_CPU, process.execPath, [wrangler, "dev", "--config", "bench/edge/wrangler.toml",
    "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
    "--show-interactive-dev-session=false", "--persist-to", persist, "--log-level", "warn"]);
  const fd = fs.openSync(c.serverLog, "a");
  fs.writeSync(fd, `\n==== ${new Date().toISOString()} wrangler dev (edge round ${round}) port ${port}\n`);
  const child = spawn(cmd, args, {
    cwd: c.root, detached: true, stdio: ["ignore", fd, fd],
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false",
      WRANGLER_HIDE_BANNER: "true", NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  c.track(child, true);
  fs.closeSync(fd);
  let exited = null;
  child.once("exit", (code, sig) => { exited = { code, sig }; });
  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once("exit", r));
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }, 5000);
      await done;
      clearTimeout(t);
    }
    // workerd may outlive wrangler for a moment: the group, once more.
    try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
    fs.rmSync(persist, { recursive: true, force: true });
  };
  const t0 = Date.now();
  while (Date.now() - t0 < 90000) {
    if (exited) { await stop(); throw new Error(`wrangler dev exited during start (${JSON.stringify(exited)}); see ${c.serverLog}`); }
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return { port, inspector, pids: descendants(child.pid), stop };
    } catch { /* not yet */ }
    await c.sleep(250);
  }
  await stop();
  throw new Error("wrangler dev did not answer /healthz within 90 s");
}

export async function runEdge(c) {
  const members = c.quick ? 50 : 200;
  const runs = { broadcast: {}, connect: {} };
  const push = (sc, kind, r) => { (runs[sc][kind] ||= []).push(r); };
  for (let round = 1; round <= c.rounds; round++) {
    let w;
    try {
      w = await startWrangler(c, round);
    } catch (e) {
      for (const k of KINDS) push("broadcast", k.key, { ok: false, error: String(e.message || e) });
      c.log(`[edge round ${round}] ${e.message || e}`);
      continue;
    }
    try {
      // a throwaway run per room kind first: the first requests a fresh
      // wrangler dev serves pay for its warm-up (JIT, the proxy), and the
      // kind measured first would pay it alone (seen: wsedge −20 %)
      for (const k of KINDS) {
        await c.loadgen(["broadcast", "--url", `ws://127.0.0.1:${w.port}` + k.path(`w${round}`), "--conns", "50",
          "--senders", "2", "--window", "16", "--size", "32", "--settle", "1", "--duration", "1", "--warmup", "1"], 60);
        await c.loadgen(["connect", "--url", `ws://127.0.0.1:${w.port}` + k.path(`v${round}`), "--concurrency", "20",
          "--duration", "1", "--warmup", "1"], 60);
      }
      for (const k of KINDS) {
        const base = `ws://127.0.0.1:${w.port}`;
        const common = ["--duration", String(c.duration), "--warmup", String(c.warmup),
          "--server-pid", w.pids.join(","), "--label", k.key];
        const b = await c.loadgen(["broadcast", "--url", base + k.path(`b${round}`), "--conns", String(members),
          "--senders", "2", "--window", "16", "--size", "32", "--settle", "1", "--open-concurrency", "32", ...common],
        c.duration + c.warmup + 90);
        push("broadcast", k.key, b);
        c.log(`[edge round ${round}] broadcast ${k.key}: ${b.ok ? Math.round(b.value) + " deliveries/s" : "FAILED " + b.error + (b.stderr ? " — " + b.stderr : "")}`);
        const u = await c.loadgen(["connect", "--url", base + k.path(`c${round}`), "--concurrency", "20", ...common],
          c.duration + c.warmup + 60);
        push("connect", k.key, u);
        c.log(`[edge round ${round}] upgrades ${k.key}: ${u.ok ? Math.round(u.value) + " cycles/s" : "FAILED " + u.error + (u.stderr ? " — " + u.stderr : "")}`);
      }
    } finally {
      await w.stop();
    }
  }
  // the wake of a hibernated room: one wrangler dev, one round per round
  const wakeMembers = c.quick ? 100 : 1000;
  runs.wake = {};
  let w;
  try {
    w = await startWrangler(c, "wake");
    runs.wake = await measureWake({ port: w.port, members: wakeMembers, cycles: c.quick ? 1 : 5, sleep: c.sleep, log: c.log });
  } catch (e) {
    c.log(`[edge wake] ${e.message || e}`);
    for (const k of KINDS) (runs.wake[k.key] ||= []).push({ ok: false, error: String(e.message || e) });
  } finally {
    if (w) await w.stop();
  }
  return { runs, markdown: markdown(c, runs, members, wakeMembers) };
}

function markdown(c, runs, members, wakeMembers) {
  const L = [];
  const fmt = (v) => (v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : v.toFixed(0));
  const pct = (x) => (typeof x === "number" && x >= 0 ? `${Math.round(x * 100)}%` : "—");
  const sum = (list) => {
    const good = (list || []).filter((r) => r.ok);
    if (!good.length) return { ok: false, error: (list || []).map((r) => r.error).find(Boolean) || "not run" };
    const m = c.median(good.map((r) => r.value));
    return { ok: true, value: m, run: good.find((r) => r.value === m), all: good.map((r) => fmt(r.value)) };
  };
  L.push("## Edge: `wrangler dev` (workerd), Worker → Durable Object");
  L.push("");
  L.push(`One \`wrangler dev\` per round (bench/edge/wrangler.toml) pinned with workerd to CPU ${c.SERVER_CPU}, loadgen on CPU ${c.CLIENT_CPU}. ` +
    "Server CPU is wrangler + workerd together. Rooms: the product's Worker and ChatRoom unchanged (its own /chat/:room route), " +
    "a plain-JS hibernating room as in Cloudflare's docs (bench/edge/plain_room.js), a PartyServer room with hibernate: true (bench/edge/party_room.js). " +
    "Local workerd, not Cloudflare's network: the figures compare implementations, they do not predict production throughput.");
  L.push("");
  const tables = [
    ["broadcast", `Broadcast, ${members} members, 2 senders × 32 B binary (window 16 per sender)`, "deliveries/s"],
    ["connect", "Upgrades through Worker → Durable Object (connect + handshake + close handshake, concurrency 20)", "cycles/s"],
  ];
  for (const [sc, title, unit] of tables) {
    const sums = Object.fromEntries(KINDS.map((k) => [k.key, sum(runs[sc][k.key])]));
    const w = sums.wsedge;
    L.push(`### ${title}`);
    L.push("");
    L.push(`| room | ${unit} | wsedge × | p50 / p99 latency (µs) | server CPU | client CPU | note |`);
    L.push("|---|---:|---:|---|---:|---:|---|");
    for (const k of KINDS) {
      const s = sums[k.key];
      if (!s.ok) { L.push(`| ${k.title} | failed | — | — | — | — | ${String(s.error).replace(/\|/g, "\\|").slice(0, 160)} |`); continue; }
      const r = s.run;
      const ratio = w.ok && k.key !== "wsedge" ? (w.value / s.value).toFixed(2) : "—";
      const notes = [];
      if (r.bound === "client-bound" || r.bound === "both") notes.push("**client-bound**");
      if (s.all.length > 1) notes.push(`runs: ${s.all.join(", ")}`);
      if (r.errors?.close_timeout) notes.push(`${r.errors.close_timeout} close timeouts`);
      L.push(`| ${k.title} | ${fmt(s.value)} | ${ratio} | ${r.lat_us ? `${r.lat_us.p50} / ${r.lat_us.p99}` : "—"} | ${pct(r.server_cpu)} | ${pct(r.client_cpu)} | ${notes.join("; ")} |`);
    }
    L.push("");
    if (sc === "broadcast") {
      const p = sums.party, j = sums.plain;
      if (w.ok && p.ok && j.ok) {
        const xp = w.value / p.value, xj = w.value / j.value;
        L.push(`Target: ≥ 1.5× PartyServer: ${xp.toFixed(2)}× — **${xp >= 1.5 ? "met" : "missed"}**; ≥ 1.0× plain JS: ${xj.toFixed(2)}× — **${xj >= 1.0 ? "met" : "missed"}**.`);
      } else L.push("Target: ≥ 1.5× PartyServer and ≥ 1.0× plain JS — not measured (a room failed).");
      L.push("");
    }
  }
  const wk = runs.wake || {};
  L.push(`### Wake of a hibernated room, ${wakeMembers} members`);
  L.push("");
  L.push("Every room filled, then silent for 12 s (wrangler dev evicts an object after 10 s without events; " +
    "the sockets stay open), then one member sends a text message: the object is built again, restores its " +
    `${wakeMembers} sessions and broadcasts it. Client-side times, send → the first / the last member has it; ` +
    "**wake adds** = cold − warm, first arrivals (warm: the median of five more right after, the object awake): the Durable Object time a wake costs " +
    "on top of the event's own work. \"rebuilt\" is the object's instance count read after (wsedge: its `wakes` stat).");
  L.push("");
  L.push("| room | cold, first / last (ms) | warm, first / last (ms) | wake adds (ms) | rebuilt | cycles (wake adds) |");
  L.push("|---|---:|---:|---:|---|---|");
  const wakeSum = {};
  for (const k of KINDS) {
    const good = (wk[k.key] || []).filter((r) => r.ok);
    if (!good.length) {
      L.push(`| ${k.title} | failed | — | — | — | ${String((wk[k.key] || [])[0]?.error || "not run").replace(/\|/g, "\\|").slice(0, 160)} |`);
      continue;
    }
    const m = c.median(good.map((r) => r.wake));
    const r = good.find((x) => x.wake === m);
    wakeSum[k.key] = m;
    L.push(`| ${k.title} | ${r.cold.first.toFixed(1)} / ${r.cold.last.toFixed(1)} | ${r.warm.first.toFixed(1)} / ${r.warm.last.toFixed(1)} | ${m.toFixed(1)} | ${good.map((x) => x.rebuilt).join(", ")} | ${good.map((x) => x.wake.toFixed(1)).join(", ")} |`);
  }
  L.push("");
  if (wakeSum.wsedge !== undefined && wakeSum.plain !== undefined && wakeSum.party !== undefined) {
    const ok = wakeSum.wsedge <= 5 && wakeSum.wsedge < wakeSum.plain && wakeSum.wsedge < wakeSum.party;
    L.push(`Target: ≤ 5 ms and below both peers: wsedge ${wakeSum.wsedge.toFixed(1)} ms, plain JS ${wakeSum.plain.toFixed(1)} ms, PartyServer ${wakeSum.party.toFixed(1)} ms — **${ok ? "met" : "missed"}**.`);
    L.push("");
  }
  return L;
}

// Standalone: node bench/edge/run.mjs wake [MEMBERS] [CYCLES] — the wake
// measurement alone, against its own wrangler dev (unpinned).
if (process.argv[2] === "wake" && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
  const members = Number(process.argv[3] || 1000), rounds = Number(process.argv[4] || 1);
  const c = standaloneContext(root, "server.log", false);
  const { sleep } = c;
  const w = await startWrangler(c, "wake");
  try {
    await measureWake({ port: w.port, members, cycles: rounds, sleep, log: console.error });
  } finally {
    await w.stop();
  }
}
