// lib.mjs — helpers for the hardening tests: start/stop the native server
// (optionally under a lowered fd limit), read its RSS from /proc, and a raw
// RFC 6455 client (exact bytes in, exact frames out) for hostile clients that
// the `ws` package would refuse to be.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// WSE_HARDENING_BIN runs the plain-build tests against another binary (e.g.
// build/wsedge-asan to hunt memory errors; RSS bounds then do not apply).
export const BIN = path.resolve(ROOT, process.env.WSE_HARDENING_BIN || 'build/wsedge');
export const BIN_ASAN = path.join(ROOT, 'build/wsedge-asan');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Reject after `ms` with a message saying what was being waited for. */
export function within(ms, promise, what) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/** Poll `fn` until it returns a truthy value; fail with `what` after `ms`. */
export async function until(fn, ms, what, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// ---- server -----------------------------------------------------------------

const live = new Set();
process.on('exit', () => {
  for (const s of live) {
    try { process.kill(s.pid, 'SIGKILL'); } catch {}
  }
});

/** The hard fd limit a child may raise its soft limit to. */
export function hardFdLimit() {
  const r = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const v = r.stdout.trim();
  return v === 'unlimited' ? Infinity : Number(v);
}
/** This process's soft fd limit (children inherit it). */
export function softFdLimit() {
  const r = spawnSync('bash', ['-c', 'ulimit -Sn'], { encoding: 'utf8' });
  const v = r.stdout.trim();
  return v === 'unlimited' ? Infinity : Number(v);
}

/**
 * Start `build/wsedge serve --listen 127.0.0.1:0 ...args` and wait for its
 * "wsedge listening on http://HOST:PORT" line. `fdLimit` runs it as
 * bash -c 'ulimit -n N; exec ...' (exec: the PID is the server's own).
 */
export async function startServer({ args = [], bin = BIN, fdLimit, env = {}, readyMs = 20000 } = {}) {
  const argv = ['serve', '--listen', '127.0.0.1:0', ...args];
  let proc;
  const opts = {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...env },
  };
  if (fdLimit) {
    proc = spawn('bash', ['-c', `ulimit -n ${fdLimit} || exit 97; exec "$0" "$@"`, bin, ...argv], opts);
  } else {
    proc = spawn(bin, argv, opts);
  }
  const srv = {
    proc,
    pid: proc.pid,
    log: '',
    exit: null,
    port: 0,
    stderr() { return this.log; },
  };
  live.add(srv);
  srv.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      srv.exit = { code, signal };
      live.delete(srv);
      resolve(srv.exit);
    });
  });
  proc.stderr.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      // keep the log bounded: info lines per connection add up in a soak
      srv.log = (srv.log + d).slice(-200000);
      const m = /wsedge listening on http:\/\/([0-9.]+):(\d+)/.exec(srv.log);
      if (m && !srv.port) {
        srv.port = Number(m[2]);
        resolve();
      }
    });
    srv.exited.then((e) => reject(new Error(`server exited before ready (${JSON.stringify(e)}):\n${srv.log}`)));
    proc.on('error', reject);
  });
  await within(readyMs, ready, `"wsedge listening" from ${path.basename(bin)}`);
  srv.alive = () => srv.exit === null;
  /** SIGTERM, wait for exit (SIGKILL after `ms`); returns {code, signal}. */
  srv.stop = async (ms = 15000) => {
    if (srv.exit) return srv.exit;
    try { process.kill(srv.pid, 'SIGTERM'); } catch {}
    const t = setTimeout(() => { try { process.kill(srv.pid, 'SIGKILL'); } catch {} }, ms);
    const e = await srv.exited;
    clearTimeout(t);
    return e;
  };
  return srv;
}

/** VmRSS / VmSize / VmHWM of a process in KiB, from /proc/PID/status. */
export function mem(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s) || [])[1]);
  return { rss: kb('VmRSS'), size: kb('VmSize'), hwm: kb('VmHWM') };
}
export const mib = (kb) => (kb / 1024).toFixed(1) + ' MiB';

/** Number of open fds of a process. */
export function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

// ---- plain HTTP ------------------------------------------------------------

/** GET /stats as JSON. */
export function stats(port) {
  return httpGet(port, '/stats').then((r) => {
    if (r.status !== 200) throw new Error(`/stats -> ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  });
}

export function httpGet(port, p, headers = {}) {
  return within(10000, new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  }), `GET ${p}`);
}

/** Parse a complete HTTP response head (+ Content-Length body) from bytes. */
export function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(head[0]);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(head[0])}`);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const cl = headers['content-length'] !== undefined ? Number(headers['content-length']) : 0;
  const body = buf.subarray(end + 4, end + 4 + cl);
  if (body.length < cl) return null;
  return { status: Number(m[1]), reason: m[2], headers, body: body.toString('utf8'), rest: buf.subarray(end + 4 + cl), headLen: end + 4 };
}

/**
 * Write raw bytes, collect everything until the server closes (or `ms`).
 * Returns { buf, ended: 'end'|'error'|'timeout', err }.
 */
export function rawExchange(port, bytes, ms = 10000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (ended, err) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      sock.destroy();
      resolve({ buf: Buffer.concat(chunks), ended, err });
    };
    const t = setTimeout(() => finish('timeout'), ms);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('end'));
    sock.on('error', (e) => finish('error', e));
  });
}

// ---- raw WebSocket ----------------------------------------------------------

export const wsKey = () => crypto.randomBytes(16).toString('base64');

export function upgradeRequest(p, port, extra = {}) {
  const h = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': wsKey(),
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  let s = `GET ${p} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) if (v !== undefined) s += `${k}: ${v}\r\n`;
  return s + '\r\n';
}

/** Encode one client frame (masked unless mask === false). */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, length } = {}) {
  payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const n = length ?? payload.length;
  let hdr;
  if (n < 126) {
    hdr = Buffer.alloc(2);
    hdr[1] = n;
  } else if (n < 65536) {
    hdr = Buffer.alloc(4);
    hdr[1] = 126;
    hdr.writeUInt16BE(n, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[1] = 127;
    hdr.writeBigUInt64BE(BigInt(n), 2);
  }
  hdr[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([hdr, payload]);
  hdr[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([hdr, key, body]);
}

export const closePayload = (code, reason = '') => {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
};

/** Incremental parser for server frames (which must be unmasked). */
export class FrameReader {
  constructor() {
    this.buf = Buffer.alloc(0);
  }
  /** Append bytes; returns the complete frames now available. */
  push(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    const out = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = (b[1] & 0x80) !== 0;
      let n = b[1] & 0x7f;
      let off = 2;
      if (n === 126) {
        if (b.length < 4) break;
        n = b.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (b.length < 10) break;
        n = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (masked) off += 4;
      if (b.length < off + n) break;
      const f = {
        fin: (b[0] & 0x80) !== 0,
        rsv: (b[0] >> 4) & 7,
        opcode: b[0] & 0x0f,
        masked,
        payload: b.subarray(off, off + n),
      };
      if (f.opcode === 8) {
        f.code = n >= 2 ? f.payload.readUInt16BE(0) : 1005;
        f.reason = f.payload.subarray(2).toString('utf8');
      }
      out.push(f);
      this.buf = b.subarray(off + n);
    }
    return out;
  }
  get pending() {
    return this.buf.length;
  }
}

/**
 * A raw WebSocket connection: upgrade by hand, then frames in and out.
 * Events are collected rather than emitted so tests can await conditions.
 */
export class RawWs {
  static async connect(port, p = '/ws', { headers = {}, ms = 10000, noDelay = true } = {}) {
    const ws = new RawWs();
    await ws.open(port, p, headers, ms, noDelay);
    return ws;
  }
  open(port, p, headers, ms, noDelay) {
    this.reader = new FrameReader();
    this.frames = [];
    this.ended = false; // FIN or close from the server
    this.error = null;
    this.bytes = 0;
    this.waiters = new Set();
    return within(ms, new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      this.sock = sock;
      sock.setNoDelay(noDelay);
      let head = Buffer.alloc(0);
      let upgraded = false;
      sock.on('connect', () => sock.write(upgradeRequest(p, port, headers)));
      sock.on('data', (d) => {
        if (!upgraded) {
          head = Buffer.concat([head, d]);
          const r = parseResponse(head);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          const status = Number(head.subarray(9, 12).toString());
          if (status !== 101) {
            reject(Object.assign(new Error(`upgrade ${p} -> ${status}: ${r ? r.body : ''}`), { status, response: r }));
            sock.destroy();
            return;
          }
          upgraded = true;
          this.response = head.subarray(0, end + 4).toString('latin1');
          resolve();
          d = head.subarray(end + 4);
          if (!d.length) return;
        }
        this.bytes += d.length;
        for (const f of this.reader.push(d)) this.frames.push(f);
        this._wake();
      });
      const fin = (e) => {
        if (e) this.error = e;
        this.ended = true;
        this._wake();
        if (!upgraded) reject(e || new Error(`connection closed before the upgrade of ${p}`));
      };
      sock.on('end', () => fin());
      sock.on('close', () => fin());
      sock.on('error', (e) => fin(e));
    }), `upgrade of ${p}`);
  }
  _wake() {
    for (const w of this.waiters) w();
  }
  /** Resolve when pred(this) holds; reject after ms. */
  wait(pred, ms, what) {
    if (pred(this)) return Promise.resolve();
    let w;
    return within(ms, new Promise((resolve) => {
      w = () => { if (pred(this)) resolve(); };
      this.waiters.add(w);
    }), what).finally(() => this.waiters.delete(w));
  }
  send(opcode, payload, opts) {
    return this.write(frame(opcode, payload, opts));
  }
  write(buf) {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) return reject(new Error('socket destroyed'));
      this.sock.write(buf, (e) => (e ? reject(e) : resolve()));
    });
  }
  /** The close frame received, if any. */
  get closeFrame() {
    return this.frames.find((f) => f.opcode === 8);
  }
  /** Wait for the server's Close frame and its TCP close. */
  async waitClosed(ms = 10000) {
    await this.wait((w) => w.closeFrame || w.ended, ms, 'a Close frame');
    return this.closeFrame;
  }
  destroy() {
    this.sock.destroy();
  }
}

/** `n` at a time over `items`, preserving nothing but completion. */
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let i = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k], k);
    }
  });
  await Promise.all(workers);
  return out;
}
