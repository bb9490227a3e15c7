// bench/cluster.mjs — broadcast through a cluster (`serve --redis`): one room
// of N members with 2 senders, its members split over two wsedge processes
// sharing a redis-server (loadgen --port2: odd connections to the second),
// beside one process holding all N. Each round starts fresh processes.
// The servers (one wsedge, or two wsedge + redis-server) are pinned to the
// same server CPU, the load generator to the client CPU: the cluster is
// measured on the same one core the single process gets, so the ratio is
// the price of crossing processes through Redis, not of more hardware.
// Called by bench/runner.mjs with its helpers (as bench/edge/run.mjs is).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const REDIS = "/usr/bin/redis-server";

function start(c, name, cmd, args) {
  const [pc, pa] = c.pinned(c.SERVER_CPU, cmd, args);
  const fd = fs.openSync(c.serverLog, "a");
  fs.writeSync(fd, `\n==== ${new Date().toISOString()} cluster ${name}: ${pc} ${pa.join(" ")}\n`);
  const child = spawn(pc, pa, { stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  c.track(child);
  return { child, pid: child.pid };
}

async function listening(c, port, what) {
  for (let t0 = Date.now(); Date.now() - t0 < 15000;) {
    if (await c.canConnect(port)) return;
    await c.sleep(50);
  }
  throw new Error(`${what} did not listen on ${port}`);
}

async function connected(port) {
  for (let t0 = Date.now(); Date.now() - t0 < 10000;) {
    try {
      const s = await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
      if (s.cluster && s.cluster.connected) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`wsedge on ${port} did not connect to Redis`);
}

export async function runCluster(c) {
  const WSEDGE = path.join(c.root, "build/wsedge");
  const members = c.quick ? 100 : 500;
  const runs = { single: [], cluster: [] };
  if (!fs.existsSync(REDIS)) return { runs, markdown: ["## Cluster", "", "redis-server missing (make deps): skipped.", ""] };
  for (let round = 1; round <= c.rounds; round++) {
    for (const kind of ["single", "cluster"]) {
      const procs = [];
      try {
        const p1 = await c.freePort(), p2 = await c.freePort(), rp = await c.freePort();
        const serve = (p, extra) => ["serve", "--listen", `127.0.0.1:${p}`, "--threads", "1", "--log-level", "error", ...extra];
        let redisArgs = [];
        if (kind === "cluster") {
          procs.push(start(c, "redis", REDIS, ["--port", String(rp), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]));
          await listening(c, rp, "redis-server");
          redisArgs = ["--redis", `redis://127.0.0.1:${rp}`];
        }
        procs.push(start(c, "wsedge", WSEDGE, serve(p1, redisArgs)));
        await listening(c, p1, "wsedge");
        if (kind === "cluster") {
          procs.push(start(c, "wsedge-2", WSEDGE, serve(p2, redisArgs)));
          await listening(c, p2, "wsedge-2");
          await connected(p1);
          await connected(p2);
        }
        const args = ["broadcast", "--url", `ws://127.0.0.1:${p1}/chat/bench`, "--conns", String(members), "--senders", "2",
          "--window", "32", "--size", "32", "--settle", c.quick ? "0.5" : "1", "--duration", String(c.duration),
          "--warmup", String(c.warmup), "--server-pid", procs.map((p) => p.pid).join(","), "--label", `cluster-${kind}`];
        if (kind === "cluster") args.push("--port2", String(p2));
        const r = await c.loadgen(args, c.duration + c.warmup + 90);
        runs[kind].push(r);
        c.log(`[cluster round ${round}] ${kind}: ${r.ok ? Math.round(r.value) + " deliveries/s, p99 " + r.lat_us?.p99 + " µs" : "FAILED " + r.error + (r.stderr ? " — " + r.stderr : "")}`);
      } catch (e) {
        runs[kind].push({ ok: false, error: String(e.message || e) });
        c.log(`[cluster round ${round}] ${kind}: ${e.message || e}`);
      } finally {
        for (const p of procs.reverse()) await c.stopServer(p);
      }
    }
  }
  return { runs, markdown: markdown(c, runs, members) };
}

function markdown(c, runs, members) {
  const fmt = (v) => (v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : v.toFixed(0));
  const pct = (x) => (typeof x === "number" && x >= 0 ? `${Math.round(x * 100)}%` : "—");
  const sum = (list) => {
    const good = list.filter((r) => r.ok);
    if (!good.length) return { ok: false, error: list.map((r) => r.error).find(Boolean) || "not run" };
    const m = c.median(good.map((r) => r.value));
    return { ok: true, value: m, run: good.find((r) => r.value === m), all: good.map((r) => fmt(r.value)) };
  };
  const s = sum(runs.single), k = sum(runs.cluster);
  const L = ["## Cluster: broadcast through Redis (`serve --redis`)", ""];
  L.push(`Broadcast, ${members} members of one room, 2 senders × 32 B binary (window 32 per sender). ` +
    `**single**: one \`wsedge serve --threads 1\` holds every member. **cluster**: the members alternate between two ` +
    `\`wsedge serve --threads 1 --redis\` processes sharing one redis-server (7.0, no persistence); each message is ` +
    `published once to the room's channel and framed once per process. All servers and Redis are pinned to CPU ${c.SERVER_CPU} ` +
    `(the cluster gets no more CPU than the single process), loadgen to CPU ${c.CLIENT_CPU}. Server CPU sums the processes. ` +
    "Latency is send → receipt at every member, so in the cluster half the deliveries cross Redis.");
  L.push("");
  L.push("| setup | deliveries/s | × single | p50 / p99 latency (µs) | server CPU | client CPU | runs |");
  L.push("|---|---:|---:|---|---:|---:|---|");
  for (const [name, x] of [["single process", s], ["2 processes + Redis", k]]) {
    if (!x.ok) { L.push(`| ${name} | FAILED: ${x.error} | | | | | |`); continue; }
    const lat = x.run.lat_us ? `${x.run.lat_us.p50} / ${x.run.lat_us.p99}` : "—";
    const ratio = s.ok ? (x.value / s.value).toFixed(2) + "×" : "—";
    L.push(`| ${name} | ${fmt(x.value)} | ${ratio} | ${lat} | ${pct(x.run.server_cpu)} | ${pct(x.run.client_cpu)} | ${x.all.join(", ")} |`);
  }
  L.push("");
  return L;
}
