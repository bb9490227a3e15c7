// Helpers for the native integration tests: start `wsedge serve` on
// 127.0.0.1 with a kernel-chosen port, wait for its listening line (bounded),
// stop it by PID with SIGTERM and report how it exited. Plus a raw
// WebSocket/HTTP client for writing frames and requests byte by byte.
//
// Binary: build/wsedge-asan (ASan+UBSan) by default; WSE_ASAN=0 uses
// build/wsedge; WSE_VALGRIND=1 runs build/wsedge under valgrind memcheck
// (exit code 99 on any error or leak); WSE_NATIVE_BIN overrides the path.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const VALGRIND = process.env.WSE_VALGRIND === '1';
const ASAN = !VALGRIND && process.env.WSE_ASAN !== '0';
export const BIN = path.resolve(ROOT, process.env.WSE_NATIVE_BIN ||
  (ASAN ? 'build/wsedge-asan' : 'build/wsedge'));
/** Slow-down factor for bounded waits (valgrind is ~20x slower). */
export const SLOW = VALGRIND ? 8 : 1;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const live = new Set();
process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

/** The uninstrumented build/wsedge (`bin` of startServer): where a test
 * measures the server's RSS, which ASan's shadow and quarantine would swamp. */
export const PLAIN_BIN = path.join(ROOT, 'build/wsedge');

function command(args, bin) {
  if (bin) {
    if (!existsSync(bin)) throw new Error(`${bin} does not exist (run make native)`);
    return [bin, args];
  }
  if (!existsSync(BIN)) throw new Error(`${BIN} does not exist (run make native build/wsedge-asan)`);
  if (VALGRIND) {
    return ['valgrind', ['--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite,indirect',
      '--errors-for-leak-kinds=definite,indirect', '--quiet', BIN, ...args]];
  }
  return [BIN, args];
}

/** Run the binary to completion (CLI tests). */
export function runCli(args, { env = {}, timeoutMs = 10000 * SLOW } = {}) {
  const [cmd, argv] = command(args);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`timeout: ${args.join(' ')}`)); }, timeoutMs);
    p.on('error', reject);
    p.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout, stderr }); });
  });
}

/**
 * Start `wsedge serve --listen 127.0.0.1:0 ...args`. Resolves once the
 * listening line is printed, with { port, url, wsUrl, pid, log(), stop() }.
 * `bin` runs that binary as is (no valgrind) instead of BIN.
 */
export async function startServer(args = [], { env = {}, timeoutMs = 15000 * SLOW, bin } = {}) {
  const [cmd, argv] = command(['serve', '--listen', '127.0.0.1:0', ...args], bin);
  const child = spawn(cmd, argv, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(child);
  let stderr = '';
  let exit = null;
  const exited = new Promise((r) => child.on('exit', (code, signal) => { exit = { code, signal }; live.delete(child); r(exit); }));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not print its listening line within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /wsedge listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    exited.then((e) => {
      clearTimeout(t);
      const hint = /unhandled dwarf2/.test(stderr)
        ? '\n(valgrind 3.19 cannot read clang 14 DWARF 5: build the binary with -gdwarf-4 and point WSE_NATIVE_BIN at it)' : '';
      reject(new Error(`server exited early (${e.code}/${e.signal}):${hint}\n${stderr.slice(0, 4000)}`));
    });
  });
  return {
    port,
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    log: () => stderr,
    exited,
    /** SIGTERM by PID; resolves with { code, signal } (SIGKILL after a bound). */
    async stop(graceMs = 15000 * SLOW) {
      if (!exit) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      return exit;
    },
  };
}

/** Resolve when `fn()` is truthy, polling; reject after `ms`. */
export async function until(fn, ms = 5000 * SLOW, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Send one message on an npm `ws` client and resolve with the next one
 * received ({ d: Buffer, isBinary }); rejects on a socket error. */
export function roundTrip(ws, data, binary) {
  return new Promise((resolve, reject) => {
    const fail = (e) => reject(e);
    ws.once('message', (d, isBinary) => { ws.off('error', fail); resolve({ d: Buffer.from(d), isBinary }); });
    ws.once('error', fail);
    ws.send(data, { binary });
  });
}

/**
 * Run tests/native/py_client.py (Python websockets 10.4) against `url`:
 * echoes of several sizes, a ping, close 1000. `opts` are its permessage-
 * deflate offer parameters (absent: the library's default offer). Resolves
 * with its JSON report; rejects on a non-zero exit or after a bound.
 */
export function runPythonClient(url, opts) {
  const args = [path.join(ROOT, 'tests/native/py_client.py'), url];
  if (opts) args.push(JSON.stringify(opts));
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let so = '', se = '';
    p.stdout.on('data', (d) => { so += d; });
    p.stderr.on('data', (d) => { se += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('python client timed out')); }, 60000 * SLOW);
    p.on('exit', (code) => { clearTimeout(t); code === 0 ? resolve(JSON.parse(so)) : reject(new Error(`python exit ${code}: ${se}`)); });
  });
}

// ---- raw frames ---------------------------------------------------------

/** One frame; masked by default (client to server). */
export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, len } = {}) {
  payload = Buffer.from(payload);
  const n = len ?? payload.length;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const m = mask ? 0x80 : 0;
  let hdr;
  if (n < 126) hdr = Buffer.from([b0, m | n]);
  else if (n < 65536) { hdr = Buffer.alloc(4); hdr[0] = b0; hdr[1] = m | 126; hdr.writeUInt16BE(n, 2); }
  else { hdr = Buffer.alloc(10); hdr[0] = b0; hdr[1] = m | 127; hdr.writeBigUInt64BE(BigInt(n), 2); }
  if (!mask) return Buffer.concat([hdr, payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([hdr, key, body]);
}

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

/** Incremental parser for server frames (unmasked). */
class FrameReader {
  constructor() { this.buf = Buffer.alloc(0); this.frames = []; }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let n = b[1] & 0x7f, off = 2;
      if (b[1] & 0x80) throw new Error('server sent a masked frame');
      if (n === 126) { if (b.length < 4) return; n = b.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (b.length < 10) return; n = Number(b.readBigUInt64BE(2)); off = 10; }
      if (b.length < off + n) return;
      const f = { fin: !!(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, payload: b.subarray(off, off + n) };
      if (f.opcode === 8) {
        f.code = n >= 2 ? f.payload.readUInt16BE(0) : 1005;
        f.reason = n > 2 ? f.payload.subarray(2).toString() : '';
      }
      this.frames.push(f);
      this.buf = b.subarray(off + n);
    }
  }
}

/** Read an HTTP response head from a socket; resolves { status, headers, rest }. */
function readHead(socket, ms) {
  return new Promise((resolve, reject) => {
    let acc = Buffer.alloc(0);
    const t = setTimeout(() => { cleanup(); reject(new Error('no response head')); }, ms);
    const onData = (d) => {
      acc = Buffer.concat([acc, d]);
      const i = acc.indexOf('\r\n\r\n');
      if (i < 0) return;
      cleanup();
      const lines = acc.subarray(0, i).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers = {};
      for (const l of lines.slice(1)) { const k = l.indexOf(':'); headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim(); }
      resolve({ status, headers, rest: acc.subarray(i + 4) });
    };
    const onEnd = () => { cleanup(); reject(new Error(`connection closed before a response head (${acc.length} bytes)`)); };
    function cleanup() { clearTimeout(t); socket.off('data', onData); socket.off('end', onEnd); socket.off('close', onEnd); }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}

export function connect(port, { allowHalfOpen = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * A raw WebSocket client: handshake by hand, then frames by hand.
 * `pipelined` bytes are written in the same packet as the request head;
 * `allowHalfOpen`: the server's FIN does not end our side (we send ours
 * only when told: ws.socket.end()).
 */
export async function rawWs(port, target = '/ws', { headers = {}, pipelined = null, ms = 5000 * SLOW, allowHalfOpen = false } = {}) {
  const socket = await connect(port, { allowHalfOpen });
  socket.setNoDelay(true);
  const key = crypto.randomBytes(16).toString('base64');
  let req = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const headBuf = Buffer.from(req + '\r\n');
  const head = readHead(socket, ms);
  socket.write(pipelined ? Buffer.concat([headBuf, pipelined]) : headBuf);
  const res = await head;
  if (res.status !== 101) throw new Error(`upgrade failed: ${res.status}`);
  const expect = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  if (res.headers['sec-websocket-accept'] !== expect) throw new Error('bad Sec-WebSocket-Accept');
  const reader = new FrameReader();
  let ended = false, waiter = null, bytes = 0, error = null, fin = false;
  const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
  const onData = (d) => { bytes += d.length; reader.push(d); wake(); };
  socket.on('data', onData);
  socket.on('end', () => { ended = fin = true; wake(); });
  socket.on('close', () => { ended = true; wake(); });
  socket.on('error', (e) => { error = e; ended = true; wake(); });
  if (res.rest.length) onData(res.rest);
  const ws = {
    socket,
    headers: res.headers,
    get ended() { return ended; },
    /** the server's FIN arrived (a reset is `error`) */
    get fin() { return fin; },
    get error() { return error; },
    get bytes() { return bytes; },
    frames: reader.frames,
    send(opcode, payload, opts) { socket.write(encodeFrame(opcode, payload, opts)); },
    sendRaw(buf) { socket.write(buf); },
    /** Next frame, or null once the connection ended; rejects after ms. */
    async next(timeout = 5000 * SLOW) {
      const end = Date.now() + timeout;
      for (;;) {
        if (reader.frames.length) return reader.frames.shift();
        if (ended) return null;
        const left = end - Date.now();
        if (left <= 0) throw new Error('timed out waiting for a frame');
        await new Promise((r) => {
          const t = setTimeout(r, left);
          waiter = () => { clearTimeout(t); r(); };
        });
      }
    },
    /** Skip frames until a Close; resolves { code, reason, skipped }. */
    async waitClose(timeout = 10000 * SLOW) {
      const end = Date.now() + timeout;
      const skipped = [];
      for (;;) {
        const f = await ws.next(Math.max(1, end - Date.now()));
        if (!f) throw new Error(`connection ended without a Close frame (skipped ${skipped.length} frames)`);
        if (f.opcode === 8) return { code: f.code, reason: f.reason, skipped };
        skipped.push(f);
      }
    },
    /** Resolves once the server closed the TCP connection. */
    async waitEnd(timeout = 10000 * SLOW) {
      await until(() => ended, timeout, 'the server to close the connection');
    },
    destroy() { socket.destroy(); },
  };
  return ws;
}

/**
 * Send raw bytes as an HTTP request and collect the whole response until the
 * server closes. Resolves { status, headers, body, raw }.
 */
export async function httpRaw(port, data, { ms = 5000 * SLOW, chunkDelay = 0, chunkSize = 0 } = {}) {
  const socket = await connect(port);
  const chunks = [];
  const done = new Promise((resolve, reject) => {
    const t = setTimeout(() => { socket.destroy(); reject(new Error('HTTP response not completed in time')); }, ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('close', () => { clearTimeout(t); resolve(); });
    socket.on('error', () => {});
  });
  const buf = Buffer.from(data);
  if (chunkSize) {
    for (let i = 0; i < buf.length; i += chunkSize) {
      socket.write(buf.subarray(i, i + chunkSize));
      if (chunkDelay) await sleep(chunkDelay);
    }
  } else {
    socket.write(buf);
  }
  await done;
  const raw = Buffer.concat(chunks);
  const i = raw.indexOf('\r\n\r\n');
  if (i < 0) return { status: 0, headers: {}, body: '', raw };
  const lines = raw.subarray(0, i).toString('latin1').split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) { const k = l.indexOf(':'); headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim(); }
  return { status: Number(lines[0].split(' ')[1]), statusLine: lines[0], headers, body: raw.subarray(i + 4).toString(), raw };
}

/** A valid upgrade request head (without the final blank line unless `end`). */
export function upgradeHead(port, target = '/ws', extra = {}, { method = 'GET', version = '13', key } = {}) {
  const k = key ?? crypto.randomBytes(16).toString('base64');
  const h = {
    Host: `127.0.0.1:${port}`, Upgrade: 'websocket', Connection: 'Upgrade',
    'Sec-WebSocket-Key': k, 'Sec-WebSocket-Version': version, ...extra,
  };
  let s = `${method} ${target} HTTP/1.1\r\n`;
  for (const [n, v] of Object.entries(h)) if (v !== null) s += `${n}: ${v}\r\n`;
  return s + '\r\n';
}
