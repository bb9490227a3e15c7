// The end-to-end behaviour suite, written once and registered per target
// (native server, Worker under wrangler dev). Every describe and test name
// starts with "[native]" or "[workers]", so a failure names its target.
//
// Frames are compared byte for byte: chat events are rebuilt (wire(): the
// core's JSON escaping) in the protocol's key order from the ids/ts the
// server chose, and compared with the raw frame text.
//
// The one legitimate difference between the targets is declared once, in
// UPGRADE_CASES (see WRANGLER_PROXY): for those cases the suite asserts what
// does happen under wrangler dev instead of what the core answers.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

const WAIT_MS = 8000;          // bound on any single wait for a frame/event
const ID_RE = /^[A-Za-z0-9_-]{22}$/;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The exact bytes the core writes for a JSON value: JSON.stringify (same
 * key order, raw non-ASCII, \n \r \t \" \\ short escapes, other controls as
 * lowercase \u00XX) except that the core also writes \b and \f as \u0008 /
 * \u000c and escapes U+2028/U+2029 (line breaks in older JavaScript). */
function wire(value) {
  return JSON.stringify(value)
    .replace(/\\(\\|b|f)/g, (m, c) => (c === 'b' ? '\\u0008' : c === 'f' ? '\\u000c' : m))
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

let roomSeq = 0;
const runTag = Date.now().toString(36);
/** A room name unique to this run (targets keep state between tests). */
const freshRoom = (what) => `e2e-${runTag}-${what}-${++roomSeq}`;

// ---- clients ---------------------------------------------------------------

/** A `ws` client with a frame queue: next() never misses an early frame. */
class Client {
  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    this.frames = [];
    this.waiter = null;
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this.#wake();
      });
    });
    ws.on('message', (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.frames.push({ data: buf, isBinary });
      this.#wake();
    });
    ws.on('error', () => { /* surfaced through close / next() */ });
  }

  #wake() {
    const w = this.waiter;
    if (w) { this.waiter = null; w(); }
  }

  /** The next frame, bounded by WAIT_MS; `what` explains a timeout. */
  async next(what) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      if (this.frames.length) return this.frames.shift();
      if (this.closeInfo) {
        throw new Error(`${this.label}: connection closed (code ${this.closeInfo.code}) while waiting for ${what}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no frame within ${WAIT_MS / 1000} s while waiting for ${what}`);
      await new Promise((resolve) => {
        const timer = setTimeout(() => { this.waiter = null; resolve(); }, left);
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
    }
  }

  /**
   * The next frame as text; fails on a binary frame. A chat room event
   * (join, message, leave) ends with ,"seq":N}: N must grow at every
   * member; it is checked here and the event returned without it (the
   * rest is compared byte for byte; the history scenarios read .seqs).
   */
  async nextText(what) {
    const f = await this.next(what);
    assert.equal(f.isBinary, false, `${this.label}: expected a text frame for ${what}, got binary`);
    const text = f.data.toString('utf8');
    let type;
    try { type = JSON.parse(text).type; } catch { return text; }
    const m = /,"seq":([1-9][0-9]*)\}$/.exec(text);
    if (!['join', 'message', 'leave'].includes(type)) {
      assert.equal(m, null, `${this.label}: ${what}: a ${type} event carries no seq: ${text}`);
      return text;
    }
    assert.ok(m, `${this.label}: ${what}: a ${type} event ends with its seq: ${text}`);
    const seq = Number(m[1]);
    this.seqs ??= [];
    assert.ok(seq > (this.seqs.at(-1) ?? 0), `${this.label}: ${what}: seq grows: ${text} after ${this.seqs.at(-1)}`);
    this.seqs.push(seq);
    return `${text.slice(0, m.index)}}`;
  }

  /** The next frame as a chat event: { raw, ev }. */
  async nextEvent(what) {
    const raw = await this.nextText(what);
    let ev;
    try { ev = JSON.parse(raw); } catch {
      assert.fail(`${this.label}: ${what}: frame is not JSON: ${raw.slice(0, 200)}`);
    }
    return { raw, ev };
  }

  /** Asserts the next frame is exactly `expected` (an object in key order). */
  async expectEvent(expected, what) {
    const raw = await this.nextText(what);
    assert.equal(raw, wire(expected), `${this.label}: ${what}`);
  }

  /** Asserts the next frame is a timestamped event equal to `fields` + ts. */
  async expectTimed(fields, what) {
    const { raw, ev } = await this.nextEvent(what);
    assert.ok(Number.isSafeInteger(ev.ts) && ev.ts > 1.6e12, `${this.label}: ${what}: ts must be epoch ms, got ${raw}`);
    assert.equal(raw, wire({ ...fields, ts: ev.ts }), `${this.label}: ${what}`);
    return ev;
  }

  send(data, opts) { this.ws.send(data, opts); }

  /** Close with `code` and wait for the close event (bounded). */
  async close(code, reason) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.waitClosed();
  }

  async waitClosed() {
    let timer;
    const bound = new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${this.label}: not closed within ${WAIT_MS / 1000} s`)), WAIT_MS);
    });
    try { return await Promise.race([this.closed, bound]); } finally { clearTimeout(timer); }
  }
}

/** Open a WebSocket; rejects with the HTTP status and body when refused. */
function connect(t, pathAndQuery, { protocols, headers, label, perMessageDeflate = true } = {}) {
  const url = t.wsUrl + pathAndQuery;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, handshakeTimeout: WAIT_MS, perMessageDeflate });
    const client = new Client(ws, `[${t.name}] ${label || pathAndQuery}`);
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        const e = new Error(`[${t.name}] upgrade to ${pathAndQuery} refused: ${res.statusCode} ${body}`);
        e.status = res.statusCode;
        e.body = body;
        reject(e);
      });
      req.destroy();
    });
    ws.once('error', (e) => reject(new Error(`[${t.name}] ${pathAndQuery}: ${e.message}`)));
  });
}

/** A chat member: connects, reads its own join (the first frame it gets). */
async function join(t, room, name, { count, protocols, label } = {}) {
  const q = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
  const c = await connect(t, `/chat/${room}${q}`, { protocols, label: label || `member ${name ?? '(no name)'}` });
  const { raw, ev } = await c.nextEvent('its own join');
  assert.equal(ev.type, 'join', `${c.label}: first frame must be its own join, got ${raw}`);
  assert.match(String(ev.id), ID_RE, `${c.label}: session id must be 22 base64url chars, got ${raw}`);
  c.id = ev.id;
  c.name = name === undefined ? `guest-${ev.id.slice(0, 6)}` : name;
  const expected = { type: 'join', id: c.id, name: c.name, count: count ?? ev.count };
  assert.equal(raw, wire(expected), `${c.label}: own join event`);
  return c;
}

// ---- raw HTTP ----------------------------------------------------------------

/** Send raw request bytes; parse status line, headers and body (by
 * Content-Length, chunked, or until close). A 101 resolves at the head. */
function rawHttp(t, request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(t.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let head = null;
    let done = false;
    const timer = setTimeout(() => finish(new Error(`[${t.name}] no complete response within ${WAIT_MS / 1000} s; got: ${buf.toString('latin1').slice(0, 300)}`)), WAIT_MS);
    function finish(err, res) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(res);
    }
    function parseHead() {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
      if (!m) { finish(new Error(`[${t.name}] bad status line: ${lines[0]}`)); return true; }
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        const v = l.slice(i + 1).trim();
        headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
      }
      head = { status: Number(m[1]), headers, rest: end + 4 };
      return true;
    }
    function tryBody(eof) {
      const body = buf.subarray(head.rest);
      const res = { status: head.status, headers: head.headers };
      if (head.status === 101 || head.status === 204 || head.status === 304) return finish(null, { ...res, body: '' });
      if (head.headers['content-length'] !== undefined) {
        const n = Number(head.headers['content-length']);
        if (body.length >= n) finish(null, { ...res, body: body.subarray(0, n).toString('utf8') });
        else if (eof) finish(new Error(`[${t.name}] body truncated: ${body.length}/${n}`));
        return;
      }
      if (/chunked/i.test(head.headers['transfer-encoding'] || '')) {
        const parts = [];
        let i = 0;
        for (;;) {
          const le = body.indexOf('\r\n', i);
          if (le < 0) break;
          const size = parseInt(body.subarray(i, le).toString('latin1'), 16);
          if (size === 0) return finish(null, { ...res, body: Buffer.concat(parts).toString('utf8') });
          if (body.length < le + 2 + size + 2) break;
          parts.push(body.subarray(le + 2, le + 2 + size));
          i = le + 2 + size + 2;
        }
        if (eof) finish(new Error(`[${t.name}] chunked body truncated`));
        return;
      }
      if (eof) finish(null, { ...res, body: body.toString('utf8') });
    }
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (!head && !parseHead()) return;
      if (head) tryBody(false);
    });
    sock.on('end', () => {
      if (!head && !parseHead()) return finish(new Error(`[${t.name}] connection closed without a response; got: ${buf.toString('latin1').slice(0, 300)}`));
      if (head) tryBody(true);
    });
    sock.on('error', (e) => finish(new Error(`[${t.name}] raw request: ${e.message}`)));
    sock.write(request);
  });
}

const newKey = () => randomBytes(16).toString('base64');
const acceptFor = (key) => createHash('sha1').update(key + GUID).digest('base64');

/** Build a request: a valid upgrade by default; `set` overrides headers in
 * place (null removes one), `add` appends more. */
function upgradeRequest(t, { method = 'GET', path, version = '1.1', set = {}, add = [] }) {
  const headers = [
    ['Host', `127.0.0.1:${t.port}`],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', newKey()],
    ['Sec-WebSocket-Version', '13'],
  ];
  const lower = Object.fromEntries(Object.entries(set).map(([k, v]) => [k.toLowerCase(), [k, v]]));
  const out = [];
  for (const [k, v] of headers) {
    const o = lower[k.toLowerCase()];
    if (o) { delete lower[k.toLowerCase()]; if (o[1] !== null) out.push([k, o[1]]); } else out.push([k, v]);
  }
  for (const [k, v] of Object.values(lower)) if (v !== null) out.push([k, v]);
  out.push(...add);
  if (method !== 'GET' && method !== 'HEAD') out.push(['Content-Length', '0']);
  // Repeated headers read as one comma-joined value (RFC 9110 §5.3).
  const key = out.filter(([k]) => k.toLowerCase() === 'sec-websocket-key').map(([, v]) => v).join(', ') || undefined;
  const text = `${method} ${path} HTTP/${version}\r\n${out.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return { text, key };
}

/** Plain HTTP via fetch: { status, headers, body } with the body as text. */
async function http(t, method, path, body, contentType = 'text/plain; charset=utf-8') {
  const res = await fetch(t.baseUrl + path, {
    method,
    body,
    headers: body === undefined ? {} : { 'content-type': contentType },
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

// ---- expected values -----------------------------------------------------------

const NEEDS_UPGRADE = 'This endpoint requires a WebSocket upgrade';
const err = (message) => JSON.stringify({ error: message });

// THE ONE KNOWN DIFFERENCE between the targets. Under `wrangler dev` the
// Worker sits behind workerd's HTTP front end, which re-issues every request
// carrying "Upgrade: websocket" to the Worker as a GET with a fresh
// Sec-WebSocket-Key, "Sec-WebSocket-Version: 13" and "Connection: Upgrade",
// and then completes (or refuses) the client's handshake itself; it also
// refuses any HTTP/1.1 request without Host before the Worker runs. So
// defects in the method of an upgrade, the key, the version, the Connection
// header, the HTTP version or Host never reach the Worker there. The core's
// answers to them are proven on the native target here and in the Workers
// Vitest suite (SELF.fetch hands the Worker the raw request). Origin,
// Sec-WebSocket-Protocol, the path and the query pass through unchanged, so
// every other case must be identical on both targets. (Measured with
// wrangler 4.86.0.)
const WRANGLER_PROXY = 'under wrangler dev, workerd\'s front end re-issues upgrade requests to the ' +
  'Worker as GET with a fresh Sec-WebSocket-Key, version 13 and Connection: Upgrade, completes or ' +
  'refuses the client handshake itself, and refuses HTTP/1.1 requests without Host; the core\'s answer ' +
  'to this case is proven on the native target and in the Vitest suite';

/** Every bad (and borderline good) upgrade. `expect` is the core's answer
 * (both targets unless `workers` says otherwise); `workers` is what the
 * client observes under wrangler dev for a case the Worker never sees. */
const UPGRADE_CASES = [
  { name: 'non-GET upgrade (POST) -> 405 + Allow: GET', req: { method: 'POST', path: '/ws' },
    expect: { status: 405, headers: { allow: 'GET' }, body: err('method not allowed (expected GET)') },
    workers: { reaches: false, why: 'it turns the POST into a GET, the Worker accepts, and the front end then fails the POST handshake', status: 500 } },
  { name: 'non-GET plain request (PUT) on a WebSocket route -> 400 JSON',
    raw: (t) => `PUT /ws HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nContent-Length: 0\r\n\r\n`,
    expect: { status: 400, body: err(NEEDS_UPGRADE) } },
  { name: 'wrong method on an HTTP route (GET /chat/:room/messages) -> 405 + Allow: POST',
    raw: (t) => `GET /chat/lobby/messages HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`,
    expect: { status: 405, headers: { allow: 'POST' }, body: err('method not allowed') } },
  { name: 'Upgrade: foo (not websocket) -> 400 JSON', req: { path: '/ws', set: { Upgrade: 'foo' } },
    expect: { status: 400, body: err(NEEDS_UPGRADE) } },
  { name: 'Sec-WebSocket-Version: 8 -> 426 + Sec-WebSocket-Version: 13', req: { path: '/ws', set: { 'Sec-WebSocket-Version': '8' } },
    expect: { status: 426, headers: { 'sec-websocket-version': '13' }, body: err('unsupported Sec-WebSocket-Version (expected 13)') },
    workers: { reaches: false, why: 'the front end itself refuses the client\'s version with a plain-text 400', status: 400, contentType: 'text/plain' } },
  { name: 'missing Sec-WebSocket-Version -> 400', req: { path: '/ws', set: { 'Sec-WebSocket-Version': null } },
    expect: { status: 400, body: err('missing Sec-WebSocket-Version header') },
    workers: { reaches: false, why: 'the front end itself refuses the missing version with a plain-text 400', status: 400, contentType: 'text/plain' } },
  { name: 'missing Sec-WebSocket-Key -> 400', req: { path: '/ws', set: { 'Sec-WebSocket-Key': null } },
    expect: { status: 400, body: err('missing Sec-WebSocket-Key') },
    workers: { reaches: false, why: 'the front end itself refuses the missing key with a plain-text 400', status: 400, contentType: 'text/plain' } },
  { name: 'Sec-WebSocket-Key not 16 bytes ("abc") -> 400', req: { path: '/ws', set: { 'Sec-WebSocket-Key': 'abc' } },
    expect: { status: 400, body: err('Sec-WebSocket-Key must be base64 of 16 bytes') },
    workers: { reaches: false, why: 'the Worker sees a fresh valid key and the front end upgrades', status: 101 } },
  { name: 'Sec-WebSocket-Key of 15 bytes -> 400', req: { path: '/ws', set: { 'Sec-WebSocket-Key': randomBytes(15).toString('base64') } },
    expect: { status: 400, body: err('Sec-WebSocket-Key must be base64 of 16 bytes') },
    workers: { reaches: false, why: 'the Worker sees a fresh valid key and the front end upgrades', status: 101 } },
  { name: 'no Connection header -> 400', req: { path: '/ws', set: { Connection: null } },
    expect: { status: 400, body: err('missing Connection: Upgrade header') },
    workers: { reaches: false, why: 'the Worker sees Connection: Upgrade and the front end upgrades', status: 101 } },
  { name: 'Connection: keep-alive without upgrade token -> 400', req: { path: '/ws', set: { Connection: 'keep-alive' } },
    expect: { status: 400, body: err('Connection header lacks the upgrade token') },
    workers: { reaches: false, why: 'the Worker sees Connection: Upgrade and the front end upgrades', status: 101 } },
  { name: 'two Sec-WebSocket-Key headers -> 400', req: { path: '/ws', add: [['Sec-WebSocket-Key', newKey()]] },
    expect: { status: 400, body: err('Sec-WebSocket-Key must appear exactly once') },
    workers: { reaches: false, why: 'the front end reads the two keys as one comma-joined value and upgrades', status: 101 } },
  { name: 'HTTP/1.1 upgrade without Host -> 400', req: { path: '/ws', set: { Host: null } },
    expect: { status: 400, body: err('missing Host header') },
    workers: { reaches: false, why: 'the front end refuses any HTTP/1.1 request without Host with a bare "Bad Request"', status: 400 } },
  { name: 'two Origin headers -> 403', req: { path: '/ws', add: [['Origin', 'http://evil.example']] }, origin: 'self',
    expect: { status: 403, body: err('origin not allowed') } },
  { name: 'HTTP/1.0 upgrade -> 400', req: { path: '/ws', version: '1.0' },
    expect: { status: 400, body: err('HTTP/1.1 or later required') },
    workers: { reaches: false, why: 'the Worker sees HTTP/1.1 and the front end upgrades', status: 101 } },
  { name: 'Connection: keep-alive, Upgrade (browser style) -> 101', req: { path: '/ws', set: { Connection: 'keep-alive, Upgrade' } },
    expect: { status: 101 } },
  { name: 'tokens in other case (UPGRADE / WebSocket) -> 101', req: { path: '/ws', set: { Connection: 'UPGRADE', Upgrade: 'WebSocket' } },
    expect: { status: 101 } },
  { name: 'plain GET on /ws -> 400 JSON', raw: (t) => `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`,
    expect: { status: 400, body: err(NEEDS_UPGRADE) } },
  { name: 'plain GET on /chat/:room -> 400 JSON', raw: (t) => `GET /chat/lobby HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`,
    expect: { status: 400, body: err(NEEDS_UPGRADE) } },
  { name: 'foreign Origin -> 403', req: { path: '/ws', set: { Origin: 'http://evil.example' } },
    expect: { status: 403, body: err('origin not allowed') } },
  { name: 'foreign Origin on /chat/:room -> 403', req: { path: '/chat/lobby?name=x', set: { Origin: 'https://evil.example' } },
    expect: { status: 403, body: err('origin not allowed') } },
  { name: 'same-origin Origin -> 101', req: { path: '/ws', set: {} }, origin: 'self',
    expect: { status: 101 } },
  { name: 'unknown path with upgrade headers -> 404 JSON', req: { path: '/nope' },
    expect: { status: 404, body: err('not found') } },
  { name: 'unknown path, plain GET -> 404 JSON', raw: (t) => `GET /nope HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`,
    expect: { status: 404, body: err('not found') } },
  { name: 'room with a forbidden character -> 400 invalid room', req: { path: '/chat/bad!room?name=x' },
    expect: { status: 400, body: err('invalid room') } },
  { name: 'room of 65 characters -> 400 invalid room', req: { path: `/chat/${'r'.repeat(65)}?name=x` },
    expect: { status: 400, body: err('invalid room') } },
  { name: 'POST into an invalid room -> 400 invalid room', raw: (t) => `POST /chat/bad!room/messages HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nContent-Length: 2\r\n\r\nhi`,
    expect: { status: 400, body: err('invalid room') } },
  { name: 'stats of an invalid room -> 400 invalid room', raw: (t) => `GET /chat/bad!room/stats HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`,
    expect: { status: 400, body: err('invalid room') } },
  { name: 'room of 64 characters -> 101', req: { path: `/chat/${'r'.repeat(64)}?name=x` },
    expect: { status: 101 } },
  { name: 'name of 33 bytes -> 400 invalid name', req: { path: `/chat/lobby?name=${'n'.repeat(33)}` },
    expect: { status: 400, body: err('invalid name') } },
  { name: 'name with a control character -> 400 invalid name', req: { path: '/chat/lobby?name=a%01b' },
    expect: { status: 400, body: err('invalid name') } },
  { name: 'name that is not UTF-8 -> 400 invalid name', req: { path: '/chat/lobby?name=%FF%FE' },
    expect: { status: 400, body: err('invalid name') } },
  { name: 'empty name -> 400 invalid name', req: { path: '/chat/lobby?name=' },
    expect: { status: 400, body: err('invalid name') } },
  { name: 'name of 32 bytes (16 x U+00E9) -> 101', req: { path: `/chat/lobby?name=${encodeURIComponent('é'.repeat(16))}` },
    expect: { status: 101 } },
];

// ---- the suite ---------------------------------------------------------------

/** A payload of exactly n bytes of valid UTF-8 (3-byte chars mixed in). */
function textOfBytes(n) {
  let s = '';
  let len = 0;
  for (let i = 0; len < n; i++) {
    if (i % 40 === 39 && n - len >= 3) { s += '€'; len += 3; } else { s += String.fromCharCode(97 + (i % 26)); len += 1; }
  }
  assert.equal(Buffer.byteLength(s), n);
  return s;
}

const ECHO_SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20];

export function registerScenarios(t) {
  const T = `[${t.name}]`;
  const it = (name, fn) => test(`${T} ${name}`, fn);
  const suite = (name, fn) => describe(`${T} ${name}`, () => {
    before(() => t.start(), { timeout: 120000 });
    fn();
  });
  const clients = [];
  const track = (c) => { clients.push(c); return c; };
  const joinT = async (...a) => track(await join(t, ...a));
  const connectT = async (...a) => track(await connect(t, ...a));
  // Leave nothing open between tests: a leftover member would change counts.
  const closeAll = async () => {
    const open = clients.splice(0);
    for (const c of open) if (c.ws.readyState === WebSocket.OPEN) c.ws.close(1000);
    await Promise.all(open.map((c) => c.waitClosed().catch(() => c.ws.terminate())));
  };

  suite('chat page', () => {
    it('GET / serves worker/chat.html byte for byte', async () => {
      const res = await fetch(t.baseUrl + '/', { signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /^text\/html/);
      const body = Buffer.from(await res.arrayBuffer());
      const file = readFileSync(new URL('../../worker/chat.html', import.meta.url));
      assert.ok(body.equals(file), `${T} GET / differs from worker/chat.html (${body.length} vs ${file.length} bytes; rebuild?)`);
    });
  });

  suite('echo (/ws)', () => {
    after(closeAll);
    // The default `ws` client offers permessage-deflate (as browsers do);
    // whether a target accepts it is its own business (workerd's front end
    // does), so the same payloads are also sent without the offer.
    for (const [size, deflate] of [...ECHO_SIZES.map((n) => [n, true]), ...[0, 126, 65536, 1 << 20].map((n) => [n, false])]) {
      const how = deflate ? '' : ' (no permessage-deflate offer)';
      it(`text of ${size} B echoed byte for byte${how}`, async (tc) => {
        const c = await connectT('/ws', { perMessageDeflate: deflate });
        tc.diagnostic(`negotiated extensions: ${JSON.stringify(c.ws.extensions)}`);
        const payload = textOfBytes(size);
        c.send(payload);
        const f = await c.next(`echo of ${size} B text`);
        assert.equal(f.isBinary, false, `${T} echo of text must be a text frame`);
        assert.ok(f.data.equals(Buffer.from(payload)), `${T} text echo of ${size} B differs (got ${f.data.length} B)`);
        await c.close(1000);
      });
      it(`binary of ${size} B echoed byte for byte${how}`, async () => {
        const c = await connectT('/ws', { perMessageDeflate: deflate });
        const payload = randomBytes(size);
        c.send(payload, { binary: true });
        const f = await c.next(`echo of ${size} B binary`);
        assert.equal(f.isBinary, true, `${T} echo of binary must be a binary frame`);
        assert.ok(f.data.equals(payload), `${T} binary echo of ${size} B differs (got ${f.data.length} B)`);
        await c.close(1000);
      });
    }
    it('messages on one connection come back in order', async () => {
      const c = await connectT('/ws');
      for (let i = 0; i < 20; i++) c.send(i % 2 ? `m${i}` : Buffer.from([i, 255 - i]), { binary: i % 2 === 0 });
      for (let i = 0; i < 20; i++) {
        const f = await c.next(`echo #${i}`);
        assert.equal(f.isBinary, i % 2 === 0, `${T} frame #${i} type`);
        assert.ok(f.data.equals(i % 2 ? Buffer.from(`m${i}`) : Buffer.from([i, 255 - i])), `${T} frame #${i} bytes`);
      }
      await c.close(1000);
    });
  });

  suite('close codes', () => {
    after(closeAll);
    for (const code of [1000, 3000, 4999]) {
      it(`client close ${code} is answered with the same code`, async () => {
        const c = await connectT('/ws');
        const info = await c.close(code, 'bye');
        assert.equal(info.code, code, `${T} server's close frame must carry ${code}`);
      });
    }
    it('chat member closing with 4001 gets 4001 back', async () => {
      const room = freshRoom('close');
      const a = await joinT(room, 'closer', { count: 1 });
      const info = await a.close(4001, 'done');
      assert.equal(info.code, 4001);
    });
  });

  suite('chat events', () => {
    after(closeAll);

    it('join/message/leave across 3 members, byte for byte', async () => {
      const room = freshRoom('chat');
      const alice = await joinT(room, 'Alice "A" \\ é', { count: 1 });
      const bob = await joinT(room, 'бob 🎉', { count: 2 });
      await alice.expectEvent({ type: 'join', id: bob.id, name: bob.name, count: 2 }, 'bob joins (seen by alice)');
      const carol = await joinT(room, undefined, { count: 3, label: 'member carol (guest)' });
      assert.equal(carol.name, `guest-${carol.id.slice(0, 6)}`);
      for (const m of [alice, bob]) {
        await m.expectEvent({ type: 'join', id: carol.id, name: carol.name, count: 3 }, `carol joins (seen by ${m.label})`);
      }
      assert.equal(new Set([alice.id, bob.id, carol.id]).size, 3, `${T} session ids must be distinct`);

      // Plain text, with characters JSON must escape and non-ASCII.
      const text = 'he said "hi" \\ <b>not html</b> ünï 🎉\ttab\nline\r\u0001\b\f\u001f\u007f \u2028\u2029 \\b end';
      alice.send(text);
      for (const m of [alice, bob, carol]) {
        await m.expectTimed({ type: 'message', id: alice.id, name: alice.name, text }, `alice's plain message at ${m.label}`);
      }
      // The JSON command form.
      bob.send(JSON.stringify({ text: '{not a command}' }));
      for (const m of [alice, bob, carol]) {
        await m.expectTimed({ type: 'message', id: bob.id, name: bob.name, text: '{not a command}' }, `bob's JSON message at ${m.label}`);
      }
      // Messages from one sender arrive in order.
      for (let i = 0; i < 5; i++) carol.send(`n${i}`);
      for (const m of [alice, bob, carol]) {
        for (let i = 0; i < 5; i++) {
          await m.expectTimed({ type: 'message', id: carol.id, name: carol.name, text: `n${i}` }, `carol's message #${i} at ${m.label}`);
        }
      }
      // Leave (normal close): the others see it with the new count.
      await carol.close(1000);
      for (const m of [alice, bob]) {
        await m.expectEvent({ type: 'leave', id: carol.id, name: carol.name, count: 2 }, `carol leaves (seen by ${m.label})`);
      }
      await bob.close(1000);
      await alice.expectEvent({ type: 'leave', id: bob.id, name: bob.name, count: 1 }, 'bob leaves (seen by alice)');
    });

    it('binary is relayed as-is to the other members only', async () => {
      const room = freshRoom('bin');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      const bytes = randomBytes(70000);
      a.send(bytes, { binary: true });
      const f = await b.next('relayed binary');
      assert.equal(f.isBinary, true);
      assert.ok(f.data.equals(bytes), `${T} relayed binary differs`);
      // a must not get its own binary back: its next frame is the marker.
      b.send('marker');
      for (const m of [a, b]) {
        await m.expectTimed({ type: 'message', id: b.id, name: b.name, text: 'marker' }, `marker at ${m.label}`);
      }
    });

    it('invalid messages get an error to the sender only', async () => {
      const room = freshRoom('err');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      const bad = [
        ['empty text', '', 'empty message'],
        ['text over 4096 bytes', 'x'.repeat(4097), 'message too long'],
        ['JSON text over 4096 bytes', JSON.stringify({ text: 'x'.repeat(4097) }), 'message too long'],
        ['JSON with empty text', '{"text":""}', 'empty message'],
        ['malformed JSON command', '{"text":', 'invalid message'],
        ['JSON command with an unknown key', '{"foo":1}', 'invalid message'],
        ['JSON command without text', JSON.stringify({ to: 'A'.repeat(22) }), 'missing text'],
        ['direct to an unknown id', JSON.stringify({ to: 'A'.repeat(22), text: 'x' }), 'no such session'],
        ['direct to a malformed id', JSON.stringify({ to: 'nope', text: 'x' }), 'no such session'],
      ];
      for (const [what, payload, message] of bad) {
        a.send(payload);
        await a.expectEvent({ type: 'error', error: message }, `error for ${what}`);
      }
      // Exactly 4096 bytes is still fine.
      const max = 'y'.repeat(4096);
      a.send(max);
      for (const m of [a, b]) await m.expectTimed({ type: 'message', id: a.id, name: a.name, text: max }, `4096-byte message at ${m.label}`);
      // b saw none of the errors: its next frame after the 4096-byte message is this marker.
      a.send('after errors');
      await b.expectTimed({ type: 'message', id: a.id, name: a.name, text: 'after errors' }, 'marker at b');
    });

    it('the heartbeat {"type":"ping"} is answered {"type":"pong"} to the sender only', async () => {
      // Workers: the runtime's auto-response (the object is not woken);
      // native: the chat app itself. One protocol for clients on both.
      const room = freshRoom('hb');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      for (let i = 0; i < 3; i++) {
        a.send('{"type":"ping"}');
        const f = await a.next('pong');
        assert.equal(f.isBinary, false);
        assert.equal(f.data.toString(), '{"type":"pong"}', `${T} heartbeat reply`);
      }
      // b got none of it: its next frame is this marker
      a.send('after heartbeats');
      await b.expectTimed({ type: 'message', id: a.id, name: a.name, text: 'after heartbeats' }, 'marker at b');
    });

    it('an abrupt disconnect appears as leave to the others', async () => {
      const room = freshRoom('abrupt');
      const a = await joinT(room, 'stays', { count: 1 });
      const b = await joinT(room, 'vanishes', { count: 2 });
      await a.nextEvent('vanishes joins');
      const c = await joinT(room, 'also stays', { count: 3 });
      await a.nextEvent('c joins');
      await b.nextEvent('c joins');
      b.ws.terminate();
      for (const m of [a, c]) {
        await m.expectEvent({ type: 'leave', id: b.id, name: b.name, count: 2 }, `abrupt leave of b at ${m.label}`);
      }
    });

    it('two rooms are isolated', async () => {
      const r1 = freshRoom('iso1');
      const r2 = freshRoom('iso2');
      const x = await joinT(r1, 'x', { count: 1 });
      const z = await joinT(r2, 'z', { count: 1 });   // count 1: x is not in r2
      const y = await joinT(r1, 'y', { count: 2 });
      await x.expectEvent({ type: 'join', id: y.id, name: 'y', count: 2 }, 'y joins r1');
      x.send('only r1');
      for (const m of [x, y]) await m.expectTimed({ type: 'message', id: x.id, name: 'x', text: 'only r1' }, `r1 message at ${m.label}`);
      z.send('only r2');
      await z.expectTimed({ type: 'message', id: z.id, name: 'z', text: 'only r2' }, 'z gets its own r2 message, nothing from r1');
      // r1 never saw r2's traffic: its next frames are r1's marker.
      y.send('r1 marker');
      for (const m of [x, y]) await m.expectTimed({ type: 'message', id: y.id, name: 'y', text: 'r1 marker' }, `r1 marker at ${m.label}`);
      // A direct message cannot cross rooms.
      z.send(JSON.stringify({ to: x.id, text: 'cross' }));
      const { raw, ev } = await z.nextEvent('error for a direct message to another room');
      assert.equal(ev.type, 'error', `${T} direct across rooms must fail, got ${raw}`);
      y.send('r1 marker 2');
      await x.expectTimed({ type: 'message', id: y.id, name: 'y', text: 'r1 marker 2' }, 'x got nothing from z');
      // Stats agree.
      for (const [room, members] of [[r1, 2], [r2, 1]]) {
        const s = await http(t, 'GET', `/chat/${room}/stats`);
        assert.equal(s.status, 200);
        const o = JSON.parse(s.body);
        assert.equal(s.body, JSON.stringify({ room, members, sessions: o.sessions, restored: o.restored, wakes: o.wakes }), `${T} stats of ${room}`);
        for (const k of ['sessions', 'restored', 'wakes']) assert.ok(Number.isSafeInteger(o[k]) && o[k] >= 0, `${T} stats.${k}`);
      }
    });
  });

  suite('send to a session and HTTP push', () => {
    after(closeAll);

    it('direct message by id over WebSocket reaches only the recipient (+ copy to sender)', async () => {
      const room = freshRoom('direct');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      const c = await joinT(room, 'c', { count: 3 });
      await a.nextEvent('c joins');
      await b.nextEvent('c joins');
      a.send(JSON.stringify({ to: b.id, text: 'psst "b"' }));
      const got = await b.expectTimed({ type: 'direct', id: a.id, name: 'a', text: 'psst "b"' }, 'direct at recipient');
      await a.expectEvent({ type: 'direct', id: a.id, name: 'a', text: 'psst "b"', ts: got.ts }, 'copy of the direct at the sender');
      // c got nothing: its next frame is the marker.
      b.send('marker');
      for (const m of [a, b, c]) await m.expectTimed({ type: 'message', id: b.id, name: 'b', text: 'marker' }, `marker at ${m.label}`);
    });

    it('POST /chat/:room/messages broadcasts as "server" (plain text and JSON)', async () => {
      const room = freshRoom('push');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      let r = await http(t, 'POST', `/chat/${room}/messages`, 'hello from HTTP ✓');
      assert.equal(r.status, 200, `${T} push status (body ${r.body})`);
      assert.equal(r.body, '{"delivered":2}');
      for (const m of [a, b]) await m.expectTimed({ type: 'message', id: 'server', name: 'server', text: 'hello from HTTP ✓' }, `push at ${m.label}`);
      r = await http(t, 'POST', `/chat/${room}/messages`, JSON.stringify({ text: 'json "push"' }), 'application/json');
      assert.equal(r.status, 200, `${T} JSON push status (body ${r.body})`);
      assert.equal(r.body, '{"delivered":2}');
      for (const m of [a, b]) await m.expectTimed({ type: 'message', id: 'server', name: 'server', text: 'json "push"' }, `JSON push at ${m.label}`);
    });

    it('POST into an empty room delivers to nobody', async () => {
      const r = await http(t, 'POST', `/chat/${freshRoom('empty')}/messages`, 'anyone?');
      assert.equal(r.status, 200, `${T} body ${r.body}`);
      assert.equal(r.body, '{"delivered":0}');
    });

    it('POST {"to":id} sends to that session only; unknown id -> 404', async () => {
      const room = freshRoom('pushto');
      const a = await joinT(room, 'a', { count: 1 });
      const b = await joinT(room, 'b', { count: 2 });
      await a.nextEvent('b joins');
      let r = await http(t, 'POST', `/chat/${room}/messages`, JSON.stringify({ to: b.id, text: 'for b only' }), 'application/json');
      assert.equal(r.status, 200, `${T} body ${r.body}`);
      assert.equal(r.body, '{"delivered":1}');
      await b.expectTimed({ type: 'direct', id: 'server', name: 'server', text: 'for b only' }, 'server direct at b');
      b.send('marker');
      await a.expectTimed({ type: 'message', id: b.id, name: 'b', text: 'marker' }, 'a got nothing before the marker');
      r = await http(t, 'POST', `/chat/${room}/messages`, JSON.stringify({ to: 'B'.repeat(22), text: 'nobody' }), 'application/json');
      assert.equal(r.status, 404, `${T} body ${r.body}`);
      assert.equal(r.body, '{"error":"no such session"}');
    });
  });

  suite('subprotocols', () => {
    after(closeAll);
    it('offer ["foo", "chat.v1"] on /chat/:room -> "chat.v1"', async () => {
      const c = await connectT(`/chat/${freshRoom('proto')}?name=p`, { protocols: ['foo', 'chat.v1'] });
      assert.equal(c.ws.protocol, 'chat.v1');
      const { ev } = await c.nextEvent('own join');
      assert.equal(ev.type, 'join');
    });
    it('offer ["foo"] on /chat/:room -> 101 without Sec-WebSocket-Protocol', async () => {
      const { text, key } = upgradeRequest(t, { path: `/chat/${freshRoom('proto')}?name=p`, set: { 'Sec-WebSocket-Protocol': 'foo' } });
      const r = await rawHttp(t, text);
      assert.equal(r.status, 101, `${T} status (body ${r.body})`);
      assert.equal(r.headers['sec-websocket-accept'], acceptFor(key));
      assert.equal(r.headers['sec-websocket-protocol'], undefined, `${T} no subprotocol may be selected`);
    });
    it('no offer -> 101 without Sec-WebSocket-Protocol', async () => {
      const { text, key } = upgradeRequest(t, { path: `/chat/${freshRoom('proto')}?name=p` });
      const r = await rawHttp(t, text);
      assert.equal(r.status, 101);
      assert.equal(r.headers['sec-websocket-accept'], acceptFor(key));
      assert.equal(r.headers['sec-websocket-protocol'], undefined);
    });
  });

  suite('upgrade validation', () => {
    for (const c of UPGRADE_CASES) {
      const viaProxy = t.name === 'workers' && c.workers && c.workers.reaches === false;
      const label = viaProxy ? `${c.name} [workers: never reaches the Worker; ${c.workers.why} -> ${c.workers.status}]` : c.name;
      it(label, async (tc) => {
        if (viaProxy) tc.diagnostic(`known difference: ${WRANGLER_PROXY}`);
        let text, key;
        if (c.raw) text = c.raw(t);
        else {
          const req = { ...c.req, set: { ...c.req.set } };
          if (c.origin === 'self') req.set.Origin = t.baseUrl;
          ({ text, key } = upgradeRequest(t, req));
        }
        const r = await rawHttp(t, text);
        const exp = viaProxy ? c.workers : c.expect;
        assert.equal(r.status, exp.status, `${T} ${c.name}: status (body ${JSON.stringify(r.body).slice(0, 200)})`);
        if (exp.status === 101) {
          assert.equal(r.headers['sec-websocket-accept'], acceptFor(key), `${T} ${c.name}: Sec-WebSocket-Accept`);
          return;
        }
        if (viaProxy) {
          // Answered by the front end, not by the Worker (no JSON body).
          if (exp.contentType) assert.match(r.headers['content-type'] || '', new RegExp(`^${exp.contentType}`), `${T} ${c.name}: content-type`);
          assert.ok(!(r.headers['content-type'] || '').includes('json'), `${T} ${c.name}: unexpected JSON from the Worker: ${r.body}`);
          return;
        }
        assert.match(r.headers['content-type'] || '', /^application\/json/, `${T} ${c.name}: content-type`);
        assert.equal(r.body, exp.body, `${T} ${c.name}: body`);
        for (const [k, v] of Object.entries(exp.headers || {})) assert.equal(r.headers[k], v, `${T} ${c.name}: header ${k}`);
      });
    }
  });
}

export { connect, join, rawHttp, upgradeRequest, http, freshRoom, wire, UPGRADE_CASES };
