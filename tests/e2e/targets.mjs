// The two targets of the end-to-end suite: the native server
// (`build/wsedge serve`) and the Worker under `wrangler dev`. Each is started
// on a free 127.0.0.1 port in its own process group and stopped by killing
// exactly that group (SIGTERM, then SIGKILL after a bound) — never by name.
//
// Overrides (development only): WSE_E2E_NATIVE_BIN (default build/wsedge),
// WSE_E2E_WRANGLER_CONFIG (default: the repository's wrangler.toml),
// WSE_E2E_START_TIMEOUT_MS (default 60000 for workers, 15000 for native),
// WSE_E2E_TARGETS=native|workers to run one target while debugging.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STOP_GRACE_MS = 6000; // native drains for up to 5 s on SIGTERM
const TAIL_LINES = 20;

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** GET url; resolves with the status (or 0 when nothing answers). */
async function probe(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

// Process groups we started and have not reaped yet: killed with SIGKILL if
// this process exits without stopping them (a crashed test file).
const live = new Set();
const tmpDirs = new Set();
function killLive() {
  for (const pgid of live) {
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
  tmpDirs.clear();
}
process.on('exit', killLive);
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(sig, () => { killLive(); process.exit(128 + n); });
}

// Runs argv[2..] in its own process group (it is the leader, spawned
// detached), relays its exit code (128+n for signal n), ignores SIGTERM so the
// command's own exit code is kept, and SIGKILLs the group if the test process
// (argv[1]) goes away (also removing $WSE_E2E_TMPDIR): a test runner killed
// by a signal or a broken pipe then leaves nothing running.
const WATCHDOG = `
const { spawn } = require('node:child_process');
const { constants } = require('node:os');
const parent = Number(process.argv[1]);
const child = spawn(process.argv[2], process.argv.slice(3), { stdio: 'inherit' });
child.on('error', (e) => { console.error('cannot spawn ' + process.argv[2] + ': ' + e.message); process.exit(127); });
child.on('exit', (code, sig) => process.exit(code ?? 128 + (constants.signals[sig] || 0)));
process.on('SIGTERM', () => {});
setInterval(() => {
  if (process.ppid === parent) return;
  try { process.kill(child.pid, 'SIGKILL'); } catch {}
  if (process.env.WSE_E2E_TMPDIR) require('node:fs').rmSync(process.env.WSE_E2E_TMPDIR, { recursive: true, force: true });
  try { process.kill(-process.pid, 'SIGKILL'); } catch {}
}, 300);
`;

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}

class Target {
  constructor(name, opts) {
    this.name = name;
    this.opts = opts;
    this.port = 0;
    this.baseUrl = '';
    this.wsUrl = '';
    this.child = null;
    this.exit = null;        // { code, signal } once the leader exited
    this.tail = [];          // last stderr/stdout lines, for failure messages
    this.started = null;     // memoised start() promise
    this.cleanup = [];
  }

  /** Starts once; later calls return the same promise. */
  start() {
    if (!this.started) this.started = this.#startRetrying();
    return this.started;
  }

  // A free port can be taken by another process between our probe and the
  // child's bind (other suites run on this machine): retry that case once.
  async #startRetrying() {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#start();
      } catch (e) {
        if (attempt >= 2 || !/EADDRINUSE|address already in use/i.test(this.tail.join('\n'))) throw e;
        this.child = null;
        this.exit = null;
        this.tail = [];
      }
    }
  }

  #log(chunk) {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      this.tail.push(line.replace(/\x1b\[[0-9;]*m/g, ''));
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
  }

  fail(what) {
    const tail = this.tail.length ? this.tail.map((l) => '    ' + l).join('\n') : '    (no output)';
    return new Error(`[${this.name}] ${what}\n  command: ${this.cmdline}\n  last output lines:\n${tail}`);
  }

  async #start() {
    const { cmd, args, env, cwd, healthPath, timeoutMs, precheck } = await this.opts.prepare(this);
    if (precheck) precheck();
    this.cmdline = [cmd, ...args].join(' ');
    // The group leader is a small watchdog that runs the command in its
    // group and kills the group if this process dies without stopping it.
    const child = spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), cmd, ...args], {
      cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child.pid);
    let spawnError = null;
    child.on('error', (e) => { spawnError = e; });
    child.stdout.on('data', (c) => this.#log(c));
    child.stderr.on('data', (c) => this.#log(c));
    const exited = new Promise((r) => child.on('exit', (code, signal) => { this.exit = { code, signal }; r(); }));
    this.exited = exited;

    const deadline = Date.now() + timeoutMs;
    const url = this.baseUrl + healthPath;
    let status = 0;
    while (Date.now() < deadline) {
      if (spawnError) { await this.stop(); throw this.fail(`could not spawn: ${spawnError.message}`); }
      if (this.exit) {
        await this.stop();
        throw this.fail(`exited before it was ready (code ${this.exit.code}, signal ${this.exit.signal})`);
      }
      status = await probe(url);
      if (status === 200) return this;
      await sleep(200);
    }
    await this.stop();
    throw this.fail(`did not answer GET ${healthPath} with 200 within ${timeoutMs / 1000} s ` +
      `(last status: ${status || 'no answer'})`);
  }

  /** SIGTERM to the whole group we started, SIGKILL after STOP_GRACE_MS. */
  async stop() {
    const child = this.child;
    if (!child) return this.exit;
    const pgid = child.pid;
    try { process.kill(-pgid, 'SIGTERM'); } catch { /* gone */ }
    const deadline = Date.now() + STOP_GRACE_MS;
    while (Date.now() < deadline && (groupAlive(pgid) || !this.exit)) await sleep(50);
    if (groupAlive(pgid)) {
      try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
      while (groupAlive(pgid) && Date.now() < deadline + 2000) await sleep(50);
    }
    live.delete(pgid);
    await Promise.race([this.exited, sleep(1000)]);
    child.stdout.destroy();
    child.stderr.destroy();
    for (const fn of this.cleanup.splice(0)) fn();
    return this.exit;
  }
}

const native = new Target('native', {
  async prepare(t) {
    t.port = await freePort();
    t.baseUrl = `http://127.0.0.1:${t.port}`;
    t.wsUrl = `ws://127.0.0.1:${t.port}`;
    const bin = path.resolve(ROOT, process.env.WSE_E2E_NATIVE_BIN || 'build/wsedge');
    return {
      cmd: bin,
      args: ['serve', '--listen', `127.0.0.1:${t.port}`, '--threads', '2'],
      env: {},
      cwd: ROOT,
      healthPath: '/healthz',
      timeoutMs: Number(process.env.WSE_E2E_START_TIMEOUT_MS) || 15000,
      precheck() {
        if (!existsSync(bin)) throw new Error(`[native] ${bin} does not exist (run \`make native\`)`);
      },
    };
  },
});

const workers = new Target('workers', {
  async prepare(t) {
    t.port = await freePort();
    const inspector = await freePort();
    t.baseUrl = `http://127.0.0.1:${t.port}`;
    t.wsUrl = `ws://127.0.0.1:${t.port}`;
    // Fresh local state per run: Durable Object storage from `make dev`
    // sessions must not leak into the suite (and vice versa).
    const persist = mkdtempSync(path.join(os.tmpdir(), 'wsedge-e2e-wrangler-'));
    tmpDirs.add(persist);
    t.cleanup.push(() => { rmSync(persist, { recursive: true, force: true }); tmpDirs.delete(persist); });
    const config = process.env.WSE_E2E_WRANGLER_CONFIG;
    return {
      cmd: 'npx',
      args: ['wrangler', 'dev', '--ip', '127.0.0.1', '--port', String(t.port),
        '--inspector-port', String(inspector), '--show-interactive-dev-session=false',
        '--persist-to', persist, ...(config ? ['--config', config] : [])],
      env: {
        WSE_E2E_TMPDIR: persist,        // removed by the watchdog if we die
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        WRANGLER_SEND_METRICS: 'false',
        WRANGLER_HIDE_BANNER: 'true',   // the banner runs an npm update check
        NO_COLOR: '1',
        FORCE_COLOR: '0',
      },
      cwd: ROOT,
      healthPath: '/',
      timeoutMs: Number(process.env.WSE_E2E_START_TIMEOUT_MS) || 60000,
      precheck() {
        if (!config && !existsSync(path.join(ROOT, 'wrangler.toml'))) {
          throw new Error(`[workers] ${path.join(ROOT, 'wrangler.toml')} does not exist`);
        }
      },
    };
  },
});

const only = process.env.WSE_E2E_TARGETS ? process.env.WSE_E2E_TARGETS.split(',') : null;
/** Both targets, in the order their suites run. */
export const targets = [native, workers].filter((t) => !only || only.includes(t.name));

/** Start every target concurrently; each start() result is memoised, so a
 * suite awaits its own target's start() and fails with that target's error. */
export function startAll(list = targets) {
  for (const t of list) t.start().catch(() => { /* reported by the suite's before hook */ });
}

export async function stopAll(list = targets) {
  await Promise.all(list.map((t) => t.stop()));
}
