// wsedge/testing — run one app's tests against both of its targets from
// Node: the native program (`build/APP serve`) and the Worker under
// `wrangler dev`. Node built-ins only (it is imported from wherever the
// package is installed, without the project's node_modules).
//
// Each target starts on a free 127.0.0.1 port in a process group of its own
// (a small watchdog leads the group), is ready when GET healthPath answers
// 200 within a bound, and is stopped by killing exactly that group: SIGTERM,
// then SIGKILL after a grace period. Never by name. If the test process dies
// first, the watchdog kills the group; on a normal exit (or SIGINT/SIGTERM/
// SIGHUP) every group still running is killed.
//
//   import { bothTargets } from 'wsedge/testing';
//   bothTargets({
//     native:  { bin: 'build/myapp', args: ['serve', '--listen', '127.0.0.1:{port}'] },
//     workers: { cwd: process.cwd() },              // its wrangler.toml
//   }, (t) => {
//     test(`[${t.name}] GET /healthz`, async () => { ... t.baseUrl ... t.wsUrl ... });
//   });
//
// Environment: WSEDGE_TARGETS=native|workers (comma-separated) runs only
// those; WSEDGE_START_TIMEOUT_MS overrides every start bound;
// WSEDGE_TESTING_VERBOSE=1 copies every target's output to stderr.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';

const STOP_GRACE_MS = 6000; // the native server drains for up to 5 s on SIGTERM
const TAIL_LINES = 20;
const NATIVE_TIMEOUT_MS = 15000;
const WORKERS_TIMEOUT_MS = 60000;

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

// Process groups we started and have not reaped yet, and temporary
// directories to remove: both handled if this process exits without
// stopping its targets (a crashed test file).
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
// (argv[1]) goes away (also removing $WSEDGE_TESTING_TMPDIR): a test runner
// killed by a signal or a broken pipe then leaves nothing running.
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
  if (process.env.WSEDGE_TESTING_TMPDIR) require('node:fs').rmSync(process.env.WSEDGE_TESTING_TMPDIR, { recursive: true, force: true });
  try { process.kill(-process.pid, 'SIGKILL'); } catch {}
}, 300);
`;

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}

const envTimeout = () => Number(process.env.WSEDGE_START_TIMEOUT_MS) || 0;

// "{port}" in an argument or an environment value becomes the chosen port.
const subst = (s, port) => String(s).replaceAll('{port}', String(port));

/**
 * One target: a command started on demand. `prepare(target)` picks the port
 * and returns { cmd, args, env, cwd, healthPath, healthStatus, timeoutMs,
 * precheck }. Fields once started: port, baseUrl (http://127.0.0.1:PORT),
 * wsUrl (ws://127.0.0.1:PORT), exit ({ code, signal } once it exited), tail
 * (its last output lines).
 */
export class Target {
  constructor(name, prepare) {
    this.name = name;
    this.prepare = prepare;
    this.port = 0;
    this.baseUrl = '';
    this.wsUrl = '';
    this.child = null;
    this.exit = null;
    this.tail = [];
    this.started = null;     // memoised start() promise
    this.cleanup = [];
    this.cmdline = '';
  }

  /** baseUrl + path (a path starting with '/'). */
  url(p = '/') { return this.baseUrl + p; }

  /** Starts once; later calls return the same promise (resolves to this). */
  start() {
    if (!this.started) this.started = this.#startRetrying();
    return this.started;
  }

  // A free port can be taken by another process between our probe and the
  // child's bind (other suites may run on this machine): retry that case once.
  async #startRetrying() {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#start();
      } catch (e) {
        if (attempt >= 2 || !/EADDRINUSE|address already in use/i.test(this.tail.join('\n'))) throw e;
      }
    }
  }

  #log(chunk) {
    if (process.env.WSEDGE_TESTING_VERBOSE === '1') process.stderr.write(`[${this.name}] ${chunk}`);
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      this.tail.push(line.replace(/\x1b\[[0-9;]*m/g, ''));
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
  }

  /** An Error naming the target, its command line and its last output lines. */
  fail(what) {
    const tail = this.tail.length ? this.tail.map((l) => '    ' + l).join('\n') : '    (no output)';
    return new Error(`[${this.name}] ${what}\n  command: ${this.cmdline}\n  last output lines:\n${tail}`);
  }

  async #start() {
    this.exit = null;
    this.tail = [];
    const { cmd, args, env, cwd, healthPath, healthStatus = 200, timeoutMs, precheck } = await this.prepare(this);
    this.cmdline = [cmd, ...args].join(' ');
    if (precheck) precheck();
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
    this.exited = new Promise((r) => child.on('exit', (code, signal) => { this.exit = { code, signal }; r(); }));

    const deadline = Date.now() + timeoutMs;
    const url = this.baseUrl + healthPath;
    let status = 0;
    while (Date.now() < deadline) {
      if (spawnError) { await this.#halt(); throw this.fail(`could not spawn: ${spawnError.message}`); }
      if (this.exit) {
        await this.#halt();
        throw this.fail(`exited before it was ready (code ${this.exit.code}, signal ${this.exit.signal})`);
      }
      status = await probe(url);
      if (status === healthStatus) return this;
      await sleep(200);
    }
    await this.#halt();
    throw this.fail(`did not answer GET ${healthPath} with ${healthStatus} within ${timeoutMs / 1000} s ` +
      `(last status: ${status || 'no answer'})`);
  }

  /** SIGTERM to the whole group we started, SIGKILL after the grace period.
   * Resolves with { code, signal } of the group leader (null if never run).
   * The target can be started again afterwards. */
  async stop() {
    const exit = await this.#halt();
    this.started = null;
    return exit;
  }

  async #halt() {
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
    this.child = null;
    return this.exit;
  }
}

async function listenOn(t) {
  t.port = await freePort();
  t.baseUrl = `http://127.0.0.1:${t.port}`;
  t.wsUrl = `ws://127.0.0.1:${t.port}`;
}

/**
 * The native target, not started yet.
 * @param {object} o
 * @param {string} o.bin         the program (resolved against o.cwd)
 * @param {string[]|function(number):string[]} [o.args]  default
 *   ['serve', '--listen', '127.0.0.1:{port}']; "{port}" is replaced by the
 *   chosen port in every argument and environment value, and must appear in one
 * @param {object} [o.env]       added to this process's environment
 * @param {string} [o.cwd]       default process.cwd()
 * @param {string} [o.healthPath]  default '/healthz'
 * @param {number} [o.timeoutMs]   default 15000
 * @param {string} [o.name]        default 'native'
 */
export function nativeTarget(o = {}) {
  const name = o.name || 'native';
  if (!o.bin) throw new Error(`[${name}] nativeTarget: bin is required`);
  return new Target(name, async (t) => {
    await listenOn(t);
    const cwd = path.resolve(o.cwd || process.cwd());
    const bin = path.resolve(cwd, o.bin);
    const raw = typeof o.args === 'function' ? o.args(t.port)
      : (o.args || ['serve', '--listen', '127.0.0.1:{port}']);
    const env = Object.fromEntries(Object.entries(o.env || {}).map(([k, v]) => [k, subst(v, t.port)]));
    const mentioned = typeof o.args === 'function' || raw.some((a) => String(a).includes('{port}')) ||
      Object.values(o.env || {}).some((v) => String(v).includes('{port}'));
    return {
      cmd: bin,
      args: raw.map((a) => subst(a, t.port)),
      env,
      cwd,
      healthPath: o.healthPath || '/healthz',
      healthStatus: o.healthStatus || 200,
      timeoutMs: envTimeout() || o.timeoutMs || NATIVE_TIMEOUT_MS,
      precheck() {
        if (!existsSync(bin)) throw new Error(`[${name}] ${bin} does not exist (build it first: make)`);
        if (!mentioned) throw new Error(`[${name}] neither args nor env name "{port}": the program would not listen on the chosen port`);
      },
    };
  });
}

// wrangler from the nearest node_modules/.bin at or above dir, else npx.
function wranglerCommand(dir) {
  for (let d = dir; ; d = path.dirname(d)) {
    const bin = path.join(d, 'node_modules', '.bin', 'wrangler');
    if (existsSync(bin)) return [bin];
    if (path.dirname(d) === d) return ['npx', 'wrangler'];
  }
}

/**
 * The Worker under `wrangler dev`, not started yet: fresh local state
 * (--persist-to a temporary directory, removed at stop), no telemetry, no
 * network fetches (CLOUDFLARE_CF_FETCH_ENABLED=false).
 * @param {object} [o]
 * @param {string} [o.cwd]       the project directory (default process.cwd())
 * @param {string} [o.config]    a wrangler config (default: cwd's wrangler.toml/.json/.jsonc)
 * @param {string[]} [o.args]    more `wrangler dev` arguments
 * @param {object} [o.env]       added to the environment
 * @param {string} [o.healthPath]  default '/'
 * @param {number} [o.healthStatus] default 200
 * @param {number} [o.timeoutMs]   default 60000
 * @param {string} [o.name]        default 'workers'
 */
export function workersTarget(o = {}) {
  const name = o.name || 'workers';
  return new Target(name, async (t) => {
    await listenOn(t);
    const inspector = await freePort();
    const cwd = path.resolve(o.cwd || process.cwd());
    const config = o.config ? path.resolve(cwd, o.config) : null;
    // Fresh local state per run: Durable Object storage from `wrangler dev`
    // sessions must not leak into the tests (and vice versa).
    const persist = mkdtempSync(path.join(os.tmpdir(), 'wsedge-testing-wrangler-'));
    tmpDirs.add(persist);
    t.cleanup.push(() => { rmSync(persist, { recursive: true, force: true }); tmpDirs.delete(persist); });
    const [cmd, ...pre] = wranglerCommand(cwd);
    return {
      cmd,
      args: [...pre, 'dev', '--ip', '127.0.0.1', '--port', String(t.port),
        '--inspector-port', String(inspector), '--show-interactive-dev-session=false',
        '--persist-to', persist, ...(config ? ['--config', config] : []), ...(o.args || [])],
      env: {
        WSEDGE_TESTING_TMPDIR: persist, // removed by the watchdog if we die
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        WRANGLER_SEND_METRICS: 'false',
        WRANGLER_HIDE_BANNER: 'true',   // the banner runs an npm update check
        NO_COLOR: '1',
        FORCE_COLOR: '0',
        ...(o.env || {}),
      },
      cwd,
      healthPath: o.healthPath || '/',
      healthStatus: o.healthStatus || 200,
      timeoutMs: envTimeout() || o.timeoutMs || WORKERS_TIMEOUT_MS,
      precheck() {
        if (config) {
          if (!existsSync(config)) throw new Error(`[${name}] ${config} does not exist`);
        } else if (!['wrangler.toml', 'wrangler.json', 'wrangler.jsonc'].some((f) => existsSync(path.join(cwd, f)))) {
          throw new Error(`[${name}] no wrangler.toml (or .json/.jsonc) in ${cwd}`);
        }
      },
    };
  });
}

/** Start the native target; resolves with it once ready. */
export function startNative(o) { return nativeTarget(o).start(); }

/** Start `wrangler dev`; resolves with the target once ready. */
export function startWorkers(o) { return workersTarget(o).start(); }

/** Keep the targets named in $WSEDGE_TARGETS (all when unset). */
export function selectTargets(list, only = process.env.WSEDGE_TARGETS) {
  const names = only ? only.split(',').map((s) => s.trim()).filter(Boolean) : null;
  return list.filter((t) => !names || names.includes(t.name));
}

/**
 * The targets for { native: nativeTarget options, workers: workersTarget
 * options } (either may be left out), native first, not started yet.
 */
export function targets(o = {}) {
  const list = [];
  if (o.native) list.push(o.native instanceof Target ? o.native : nativeTarget(o.native));
  if (o.workers) list.push(o.workers instanceof Target ? o.workers : workersTarget(o.workers));
  return selectTargets(list);
}

/** Start every target concurrently (without waiting): each start() is
 * memoised, so each suite awaits its own target and fails with its error. */
export function startAll(list) {
  for (const t of list) t.start().catch(() => { /* reported by the suite awaiting it */ });
}

export async function stopAll(list) {
  await Promise.all(list.map((t) => t.stop()));
}

/**
 * Run one scenario on both targets with node:test: starts them all
 * concurrently, registers describe(`[name]`) per target whose before hook
 * awaits that target, calls scenario(target) inside it, and stops every
 * target after the file's tests. Returns the targets.
 */
export function bothTargets(o, scenario) {
  const list = targets(o);
  const bound = envTimeout() || Math.max(o.native?.timeoutMs || 0, o.workers?.timeoutMs || 0, WORKERS_TIMEOUT_MS);
  before(() => startAll(list));
  after(() => stopAll(list), { timeout: 30000 });
  for (const t of list) {
    describe(`[${t.name}]`, () => {
      before(() => t.start(), { timeout: 2 * bound + 10000 });
      scenario(t);
    });
  }
  return list;
}

/**
 * Launch options for Debian's headless Chromium with playwright-core
 * (`chromium.launch(chromiumLaunchOptions())`): the system browser, and no
 * background networking (a closed network refuses it; CI has no other).
 * Playwright gives every launch a fresh temporary profile of its own.
 */
export function chromiumLaunchOptions(extra = {}) {
  return {
    executablePath: process.env.WSEDGE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    timeout: 30000,
    ...extra,
  };
}
