// wsedge.js — the thin Workers shim around a wsedge app compiled to wasm.
//
// It knows bytes, sockets and Durable Object APIs; every protocol and room
// decision (routes and where they run, RFC 6455 validation, sessions, the
// app's events, attachment format) is made by the C core and app in the
// module. The shim:
//   - instantiates each module once per isolate (cached per module: a
//     Worker may hold several apps built from different modules);
//   - routes a Worker's requests from the app's own table (wsx_route_info):
//     a route with a Durable Object binding goes to that object, the rest
//     runs in the Worker;
//   - packs requests/messages into one growable input buffer per app
//     context (no per-call allocation on either side);
//   - executes the actions the core queues (send, broadcast, close, attach);
//   - bridges WebSocketPair, stub.fetch and the Hibernation API
//     (WsedgeRoom / DurableSessions).
//
// Wire between JS and wasm (see bindings/workers/wsedge_wasm.c):
//   result block (u32 words, wsx_result):
//     0 status  1 headers ptr  2 headers len  3 body ptr  4 body len
//     5 action count  6 tape ptr  7 new session handle  8 session id ptr
//     9 restore handles ptr (i32[n])  10 lifetime restore passes
//     11 lifetime restored sessions (after wsx_restore / wsx_seed)
//     12 route index  13/14 pattern ptr/len  15/16 Durable Object binding
//     ptr/len (0: none)  17/18 key ptr/len (after wsx_route_info)
//   action tape: 8 u32 words per action —
//     type (1 send, 2 broadcast, 3 close, 4 attach), target handle,
//     opcode (1 text, 2 binary), close code, data ptr, data len,
//     recipients ptr (u32 handles), recipient count.
//   Pointers into wasm memory are valid until the next call into the module.
//   packed request (input buffer): 16 bytes entropy, u32 n_headers, u32 body
//     length, u32 lengths of method, target, name0, value0, ..., the strings
//     back to back, then the body.

import { DurableObject } from 'cloudflare:workers';

const enc = new TextEncoder();
const dec = new TextDecoder();

const R_STATUS = 0, R_HDRS = 1, R_HDRS_LEN = 2, R_BODY = 3, R_BODY_LEN = 4;
const R_NACT = 5, R_TAPE = 6, R_HANDLE = 7, R_SID = 8, R_HANDLES = 9, R_RESTORES = 10, R_RESTORED = 11;
const R_ROUTE_INDEX = 12, R_PATTERN = 13, R_PATTERN_LEN = 14, R_DURABLE = 15, R_DURABLE_LEN = 16, R_KEY = 17, R_KEY_LEN = 18;
const R_NEXT_LO = 19, R_NEXT_HI = 20; // wsedge_wasm.c: R_KEY_LEN is 18

// ---- settings the edge takes from the Worker's code and its wrangler vars ----
//
// The same variables (and value syntax) as the native server's environment;
// a var wins over `options.config` in code, as a native flag wins over the
// defaults. What each wse_config_t field means at the edge: README
// ("Limits and timeouts on both targets").
const SETTING_VARS = {
  maxMessageSize: 'WSEDGE_MAX_MESSAGE_SIZE',   // bytes (k/m/g suffix): larger message -> 1009
  sessionTimeout: 'WSEDGE_WEBSOCKET_TIMEOUT',  // seconds: lifetime, then 4000 "timeout" (0: none)
  allowOrigins: 'WSEDGE_ALLOW_ORIGINS',        // comma-separated origins, or "*"
  historyFlushMs: 'WSEDGE_HISTORY_FLUSH_MS',   // ms a room's history rows may wait for one commit (0: each at once)
};

function settingError(name, v, why) {
  return new Error(`wsedge: invalid ${name} '${v}': ${why}`);
}

function parseSetting(key, v, name) {
  const str = String(v).trim();
  if (key === 'allowOrigins') {
    const list = Array.isArray(v) ? v.map(String) : str.split(',').map((o) => o.trim()).filter(Boolean);
    if (list.length > 32) throw settingError(name, v, 'too many origins (max 32)');
    for (const o of list) {
      if (o !== '*' && !/^https?:\/\/[^\s,/]+$/.test(o)) throw settingError(name, o, 'expected "*" or scheme://host[:port]');
    }
    return list;
  }
  const m = /^(\d+)([kmg])?$/i.exec(str);
  if (!m || (m[2] && key !== 'maxMessageSize')) {
    throw settingError(name, v, key === 'maxMessageSize' ? 'expected a byte count (e.g. 65536, 64k, 16m)'
      : key === 'historyFlushMs' ? 'expected whole milliseconds' : 'expected whole seconds');
  }
  const n = Number(m[1]) * (m[2] ? 1024 ** ' kmg'.indexOf(m[2].toLowerCase()) : 1);
  if (key === 'maxMessageSize' && (n < 1 || n > 2 ** 30)) throw settingError(name, v, 'must be 1..1g');
  if (key === 'sessionTimeout' && n > 2000000) throw settingError(name, v, 'must be 0..2000000');
  if (key === 'historyFlushMs' && n > 1000) throw settingError(name, v, 'must be 0..1000');
  return n;
}

/** The app's settings: options.config, then the env's WSEDGE_* vars over it. */
function settingsFrom(config = {}, env) {
  const out = {};
  for (const [key, name] of Object.entries(SETTING_VARS)) {
    if (config[key] !== undefined) out[key] = parseSetting(key, config[key], `config.${key}`);
    const v = env && typeof env[name] === 'string' ? env[name] : undefined;
    if (v !== undefined && v !== '') out[key] = parseSetting(key, v, name);
  }
  return out;
}

export const ACT_SEND = 1, ACT_BROADCAST = 2, ACT_CLOSE = 3, ACT_ATTACH = 4, ACT_TIMER = 5, ACT_HISTORY = 6;
const OP_TEXT = 1, OP_BINARY = 2;
const ROUTE_WS = 1, ROUTE_HTTP = 2; // WSE_ROUTE_* (wsedge/app.h)
const NO_ROUTE = Object.freeze({ kind: 'none', index: -1, pattern: null, durable: null, key: null });
const SID_LEN = 22;
const WSE_EPROTO = -4;
const NOT_OPEN = 2; // readyState CLOSING (2) or CLOSED (3)

// Imports a module may ask for from "env" (emscripten's standalone runtime);
// anything else is refused at instantiation.
const ENV = {
  emscripten_notify_memory_growth() {},
};

// What the shim calls; a module without them is not a wsedge app (or one
// built against an older glue).
const REQUIRED = ['wsx_new', 'wsx_free', 'wsx_result', 'wsx_input', 'wsx_validate', 'wsx_is_upgrade', 'wsx_upgrade',
  'wsx_open', 'wsx_message', 'wsx_close', 'wsx_error', 'wsx_http', 'wsx_seed', 'wsx_restore', 'wsx_sid', 'wsx_find',
  'wsx_send_to', 'wsx_sessions', 'wsx_route_info', 'wsx_heap_used', 'wsx_heap_size', 'wsx_start', 'wsx_expire',
  'wsx_max_message', 'wsx_session_end', 'wsx_heartbeat', 'wsx_wire_code', 'wsx_timers_run', 'wsx_timer_next',
  'wsx_timer_load', 'wsx_history_load', 'wsx_history_floor', 'wsx_route_validate'];

// ---- modules: one instance per module per isolate ---------------------------

class Core {
  constructor(module) {
    const imports = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.module !== 'env' || imp.kind !== 'function' || !(imp.name in ENV)) {
        throw new Error(`wsedge: the wasm module imports ${imp.module}.${imp.name}, which the shim does not provide`);
      }
      (imports.env ??= {})[imp.name] = ENV[imp.name];
    }
    const instance = new WebAssembly.Instance(module, imports);
    this.instance = instance;
    this.x = instance.exports;
    const missing = REQUIRED.filter((n) => typeof this.x[n] !== 'function');
    if (missing.length) throw new Error(`wsedge: the wasm module lacks ${missing.join(', ')} (not built with bindings/workers/wsedge_wasm.c?)`);
    this.memory = this.x.memory;
    if (!(this.memory instanceof WebAssembly.Memory)) throw new Error('wsedge: the wasm module exports no memory');
    // emscripten reactors want _initialize; plain wasm-ld modules may have ctors
    if (typeof this.x._initialize === 'function') this.x._initialize();
    else if (typeof this.x.__wasm_call_ctors === 'function') this.x.__wasm_call_ctors();
    this.buf = null;
    this.refresh();
  }

  heapStats() {
    return { used: this.x.wsx_heap_used(), size: this.x.wsx_heap_size(), memory: this.memory.buffer.byteLength };
  }

  // The app's heartbeat pair [ping, pong] (wse_app_heartbeat), or null: its
  // entry point run once with the defaults in a context of its own, freed.
  heartbeat() {
    if (this.hb === undefined) {
      const x = this.x;
      const p = x.wsx_new();
      let hb = null;
      if (p && x.wsx_start(p, 0, -1, 0) === 0) {
        const a = x.wsx_heartbeat(p, 0);
        const b = x.wsx_heartbeat(p, 1);
        this.refresh();
        if (a && b) hb = [this.cstring(a), this.cstring(b)];
      }
      if (p) x.wsx_free(p);
      this.hb = hb;
    }
    return this.hb;
  }

  cstring(p) {
    let e = p;
    while (this.u8[e]) e++;
    return dec.decode(this.u8.subarray(p, e));
  }

  // Views die when memory grows; every call that may allocate is followed by this.
  refresh() {
    if (this.buf !== this.memory.buffer) {
      this.buf = this.memory.buffer;
      this.u8 = new Uint8Array(this.buf);
      this.u32 = new Uint32Array(this.buf);
      this.i32 = new Int32Array(this.buf);
    }
  }
}

// WebAssembly.Module -> Core. Every WsedgeApp built from the same module
// shares its instance (one heap); different modules never share memory.
const cores = new WeakMap();

function coreFor(module) {
  if (!(module instanceof WebAssembly.Module)) {
    throw new TypeError('wsedge: WsedgeApp needs the compiled wasm module (import wasm from "./app.wasm" with a CompiledWasm rule)');
  }
  let c = cores.get(module);
  if (!c) {
    c = new Core(module);
    cores.set(module, c);
  }
  return c;
}

// The first WsedgeApp constructed in this isolate: what WsedgeRoom,
// DurableSessions, WebSocketContext.fromRequest and heapStats() use when
// not told otherwise.
let defaultApp = null;

function theDefault() {
  if (!defaultApp) throw new Error('wsedge: no WsedgeApp in this isolate yet (construct one: new WsedgeApp(wasm))');
  return defaultApp;
}

/** Heap figures of the default app's module: bytes in use, bytes managed, linear memory. */
export function heapStats() {
  return theDefault().heapStats();
}

// ---- one application context (an app with its sessions) ------------------

// request.url is the runtime's serialisation of an already parsed URL, so
// its host and origin-form target (path + query) are plain slices of it: no
// URL object per request.
function urlParts(href) {
  const a = href.indexOf('://');
  const p = a < 0 ? -1 : href.indexOf('/', a + 3);
  if (p < 0) {
    const u = new URL(href);
    return { host: u.host, target: u.pathname + u.search };
  }
  const h = href.indexOf('#', p);
  return { host: href.slice(a + 3, p), target: h < 0 ? href.slice(p) : href.slice(p, h) };
}

function jsonResponse(status, obj, headers) {
  const h = new Headers(headers);
  h.set('content-type', 'application/json');
  return new Response(JSON.stringify(obj), { status, headers: h });
}

// 101 headers the runtime produces itself (WebSocketPair answers the
// handshake); permessage-deflate is never negotiated by the core at the edge.
const RUNTIME_OWNED = new Set(['upgrade', 'connection', 'sec-websocket-accept', 'sec-websocket-extensions']);

// Write s at u8[off] (UTF-8), its byte length at u32[li]; returns the new offset.
function putString(u8, u32, li, off, s) {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const ch = s.charCodeAt(i);
    if (ch >= 0x80) break;
    u8[off + i] = ch;
  }
  let written = i;
  if (i < n) written += enc.encodeInto(s.slice(i), u8.subarray(off + i, off + 3 * n)).written;
  u32[li] = written;
  return off + written;
}

// What wse_upgrade_validate reads (wasm/src/handshake.c; extensions are the
// runtime's at the edge).
const HANDSHAKE_HEADERS = ['host', 'upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version',
  'sec-websocket-protocol', 'origin'];
const ENTROPY = new Uint8Array(1024);
let entropyAt = ENTROPY.length;

export class WsedgeContext {
  /** settings: { maxMessageSize, sessionTimeout, allowOrigins, historyFlushMs } (see settingsFrom). */
  constructor(core, settings = {}) {
    this.hs = []; // header names and values of the request being packed
    this.routeNames = new Map(); // route id -> its decoded pattern and binding name
    this.core = core;
    this.ptr = core.x.wsx_new();
    if (!this.ptr) throw new Error('wsedge: out of memory creating an app context');
    this.res = this.core.x.wsx_result(this.ptr) >>> 2;
    const origins = settings.allowOrigins ?? [];
    const n = origins.length ? this.putData(origins.join('\0') + '\0') : 0;
    const rc = core.x.wsx_start(this.ptr, settings.maxMessageSize ?? 0, settings.sessionTimeout ?? -1, n);
    if (rc < 0) {
      core.x.wsx_free(this.ptr);
      this.ptr = 0;
      throw new Error(`wsedge: the app's entry point wsedge_app() failed (error ${rc})`);
    }
  }

  /** The largest message session h's route accepts (bytes). */
  maxMessage(h) {
    return this.core.x.wsx_max_message(this.ptr, h);
  }

  /** When session h's lifetime ends (ms since the epoch; 0: never). */
  sessionEnd(h) {
    return this.core.x.wsx_session_end(this.ptr, h);
  }

  /** Queue 4000 "timeout" for sessions past their lifetime; returns the next end (ms, 0: none). */
  expire() {
    this.core.x.wsx_expire(this.ptr, Date.now());
    return this.word(R_NEXT_LO) + this.word(R_NEXT_HI) * 2 ** 32;
  }

  /** Run the app's due timers (actions queued; execute them). Returns how many ran. */
  runTimers() {
    return this.core.x.wsx_timers_run(this.ptr, Date.now());
  }

  /** When the app's earliest timer is due (ms since the epoch; 0: none). */
  timerNext() {
    return this.core.x.wsx_timer_next(this.ptr);
  }

  /** Re-create a timer from a record a TIMER action carried; 0 or a negative error. */
  loadTimer(rec) {
    return this.core.x.wsx_timer_load(this.ptr, this.putData(rec));
  }

  /** Re-create a history entry from a stored record (a HISTORY action's); 0 or a negative error. */
  loadHistory(rec) {
    return this.core.x.wsx_history_load(this.ptr, this.putData(rec));
  }

  /** Number every room's next event above seq (after loading history). */
  historyFloor(seq) {
    this.core.x.wsx_history_floor(this.ptr, seq % 2 ** 32, Math.floor(seq / 2 ** 32));
  }

  /** Release the context and every session in it. */
  free() {
    if (this.ptr) this.core.x.wsx_free(this.ptr);
    this.ptr = 0;
  }

  input(n) {
    const p = this.core.x.wsx_input(this.ptr, n);
    if (!p) throw new Error('wsedge: out of memory');
    this.core.refresh();
    return p;
  }

  /**
   * Pack method, target, headers (and body) into the input buffer. Strings
   * are written byte by byte while they are ASCII (header names and values
   * nearly always are); a string with other characters goes through
   * TextEncoder.encodeInto. No per-string views or closures.
   */
  pack(request, href, body, names) {
    const hs = this.hs;
    hs.length = 0;
    if (names) { // only these (Headers.get: no iteration, no sorting)
      for (const k of names) {
        const v = request.headers.get(k);
        if (v !== null) hs.push(k, v);
      }
    } else {
      for (const [k, v] of request.headers) hs.push(k, v);
    }
    const { host, target } = urlParts(href);
    if (!request.headers.has('host')) hs.push('host', host);
    const method = request.method;
    const nlen = 2 + hs.length;
    let bound = 24 + 4 * nlen + 3 * (method.length + target.length) + (body ? body.byteLength : 0);
    for (let i = 0; i < hs.length; i++) bound += 3 * hs[i].length;
    const p = this.input(bound);
    const { u8, u32 } = this.core;
    let off = p + 24 + 4 * nlen;
    const lens = (p + 24) >>> 2;
    off = putString(u8, u32, lens, off, method);
    off = putString(u8, u32, lens + 1, off, target);
    for (let i = 0; i < hs.length; i++) off = putString(u8, u32, lens + 2 + i, off, hs[i]);
    u32[(p + 16) >>> 2] = hs.length / 2;
    u32[(p + 20) >>> 2] = body ? body.byteLength : 0;
    if (body) {
      u8.set(body, off);
      off += body.byteLength;
    }
    this.packed = p;
    return off - p;
  }

  // A session id's 16 bytes, from a pool refilled 1 KiB at a time (one
  // getRandomValues per 64 upgrades, as the native host does with getrandom).
  fillEntropy() {
    if (entropyAt + 16 > ENTROPY.length) {
      crypto.getRandomValues(ENTROPY);
      entropyAt = 0;
    }
    this.core.u8.set(ENTROPY.subarray(entropyAt, entropyAt + 16), this.packed);
    ENTROPY.fill(0, entropyAt, entropyAt + 16); // used once
    entropyAt += 16;
  }

  /** Write a string or bytes into the input buffer; returns the length. */
  putData(data, prefix) {
    const pre = prefix ? prefix.length : 0;
    if (typeof data === 'string') {
      const p = this.input(pre + 3 * data.length);
      if (pre) enc.encodeInto(prefix, this.core.u8.subarray(p, p + pre));
      return pre + enc.encodeInto(data, this.core.u8.subarray(p + pre, p + pre + 3 * data.length)).written;
    }
    const bytes = data instanceof Uint8Array ? data : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    const p = this.input(pre + bytes.byteLength);
    if (pre) enc.encodeInto(prefix, this.core.u8.subarray(p, p + pre));
    this.core.u8.set(bytes, p + pre);
    return pre + bytes.byteLength;
  }

  word(i) {
    this.core.refresh();
    return this.core.u32[this.res + i];
  }

  /** Status, headers and body of the last validate/upgrade/http call. */
  result() {
    const c = this.core;
    c.refresh();
    const w = c.u32, r = this.res;
    const status = w[r + R_STATUS] | 0;
    const hp = w[r + R_HDRS], hl = w[r + R_HDRS_LEN], bp = w[r + R_BODY], bl = w[r + R_BODY_LEN];
    const headers = [];
    if (hl) {
      for (const line of dec.decode(c.u8.subarray(hp, hp + hl)).split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
      }
    }
    const body = bl ? c.u8.slice(bp, bp + bl) : null;
    return { status, headers, body };
  }

  /** The last call's result as an HTTP Response (JSON body when present). */
  response(extra) {
    const { status, headers, body } = this.result();
    const h = new Headers(headers);
    if (body && !h.has('content-type')) h.set('content-type', 'application/json');
    if (extra) for (const [k, v] of new Headers(extra)) h.set(k, v);
    return new Response(body, { status, headers: h });
  }

  /** The 101's headers the Worker must add itself (e.g. Sec-WebSocket-Protocol). */
  upgradeHeaders() {
    // the wasm core leaves out what the runtime writes: usually nothing is left
    if (!this.word(R_HDRS_LEN)) return undefined;
    let h;
    for (const [k, v] of this.result().headers) {
      if (!RUNTIME_OWNED.has(k.toLowerCase())) (h ??= new Headers()).append(k, v);
    }
    return h;
  }

  /**
   * Where `target` (origin-form: path and query) goes, from the app's own
   * route table: {kind, index, pattern, durable, key}.
   */
  route(target) {
    const n = this.putData(target);
    return this.routeOf(this.core.x.wsx_route_info(this.ptr, n));
  }

  // The route words of the last route call as {kind, index, pattern,
  // durable, key}: a route's pattern and binding name are decoded once per
  // context, the key (the object's name, from the request) every time.
  routeOf(k) {
    if (k !== ROUTE_WS && k !== ROUTE_HTTP) return NO_ROUTE;
    const c = this.core;
    c.refresh();
    const w = c.u32, r = this.res;
    const index = w[r + R_ROUTE_INDEX] | 0;
    const id = k === ROUTE_WS ? index : ~index;
    let names = this.routeNames.get(id);
    if (!names) {
      const str = (p, n) => (n ? dec.decode(c.u8.subarray(p, p + n)) : null);
      names = { pattern: str(w[r + R_PATTERN], w[r + R_PATTERN_LEN]), durable: str(w[r + R_DURABLE], w[r + R_DURABLE_LEN]) };
      this.routeNames.set(id, names);
    }
    return {
      kind: k === ROUTE_WS ? 'websocket' : 'http',
      index,
      pattern: names.pattern,
      durable: names.durable,
      key: names.durable ? dec.decode(c.u8.subarray(w[r + R_KEY], w[r + R_KEY] + w[r + R_KEY_LEN])) : null,
    };
  }

  /**
   * The Worker's one core call per request: route() of the request and,
   * unless an HTTP route takes it, validate()'s answer: {route, status}
   * (status 0 for an HTTP route; the rejection in result()).
   */
  routeValidate(request, href = request.url) {
    const n = this.pack(request, href, null, HANDSHAKE_HEADERS);
    const route = this.routeOf(this.core.x.wsx_route_validate(this.ptr, n, Date.now()));
    return { route, status: route.kind === 'http' ? 0 : this.word(R_STATUS) | 0 };
  }


  // The Worker's validation runs the core's handshake checks only (no app
  // hook): it is handed just the headers those read. The object, whose
  // on_upgrade may read any header, gets them all.
  validate(request, href = request.url) {
    const n = this.pack(request, href, null, HANDSHAKE_HEADERS);
    return this.core.x.wsx_validate(this.ptr, n, Date.now());
  }

  isUpgrade(request, href, body) {
    const n = this.pack(request, href, body);
    this.packedLen = n;
    return this.core.x.wsx_is_upgrade(this.ptr, n) === 1;
  }

  /** Full upgrade on the packed request: returns the handle (>= 0) or < 0. */
  upgradePacked() {
    this.fillEntropy();
    return this.core.x.wsx_upgrade(this.ptr, this.packedLen, Date.now());
  }

  httpPacked() {
    return this.core.x.wsx_http(this.ptr, this.packedLen, Date.now());
  }

  sessionId(h) {
    const p = this.core.x.wsx_sid(this.ptr, h);
    if (!p) return null;
    this.core.refresh();
    return dec.decode(this.core.u8.subarray(p, p + SID_LEN));
  }

  lastSessionId() {
    const p = this.word(R_SID);
    return p ? dec.decode(this.core.u8.subarray(p, p + SID_LEN)) : null;
  }

  open(h) {
    return this.core.x.wsx_open(this.ptr, h, Date.now());
  }

  message(h, data) {
    const op = typeof data === 'string' ? OP_TEXT : OP_BINARY;
    const n = this.putData(data);
    return this.core.x.wsx_message(this.ptr, h, op, n, Date.now());
  }

  close(h, code, reason) {
    const n = reason ? this.putData(reason) : 0;
    return this.core.x.wsx_close(this.ptr, h, code, n, Date.now());
  }

  error(h, err = WSE_EPROTO) {
    return this.core.x.wsx_error(this.ptr, h, err, Date.now());
  }

  /** Send to a session by id from anywhere (Rwf's Comms). */
  sendTo(sid, data) {
    const op = typeof data === 'string' ? OP_TEXT : OP_BINARY;
    const n = this.putData(data, sid);
    return this.core.x.wsx_send_to(this.ptr, op, n);
  }

  findSession(sid) {
    const n = this.putData(sid);
    return this.core.x.wsx_find(this.ptr, n);
  }

  sessions() {
    return this.core.x.wsx_sessions(this.ptr);
  }

  /** Add earlier instances' totals to the restore counters (lifetime stats). */
  seed(restores, restored) {
    this.core.x.wsx_seed(this.ptr, restores, restored);
  }

  /** Lifetime restore passes (wakes) and restored sessions, as the core counts them. */
  counters() {
    this.core.refresh();
    return { wakes: this.core.u32[this.res + R_RESTORES], restored: this.core.u32[this.res + R_RESTORED] };
  }

  /**
   * Restore from attachments (Uint8Array|null each); returns handles/errors.
   * sameWake: these sockets belong to a wake already counted.
   */
  restore(atts, sameWake = false) {
    let total = 4 + 4 * atts.length;
    for (const a of atts) total += a ? a.byteLength : 0;
    const p = this.input(total);
    const { u8, u32 } = this.core;
    u32[p >>> 2] = atts.length;
    let off = p + 4 + 4 * atts.length;
    atts.forEach((a, i) => {
      const n = a ? a.byteLength : 0;
      u32[(p >>> 2) + 1 + i] = n;
      if (n) u8.set(a, off);
      off += n;
    });
    const restored = this.core.x.wsx_restore(this.ptr, off - p, Date.now(), sameWake ? 1 : 0);
    this.core.refresh();
    const hp = this.core.u32[this.res + R_HANDLES] >>> 2;
    const handles = Array.from(this.core.i32.subarray(hp, hp + atts.length));
    return { restored, handles };
  }

  /**
   * Execute the actions queued by the last call against `host`, which
   * provides send(h, msg), close(h, code, reason) and attach(h, bytes).
   * A broadcast's payload is decoded once and the same value goes to every
   * recipient.
   */
  execute(host) {
    const c = this.core;
    c.refresh();
    const w = c.u32, u8 = c.u8, r = this.res;
    const n = w[r + R_NACT];
    if (!n) return;
    let t = w[r + R_TAPE] >>> 2, timers = false;
    for (let i = 0; i < n; i++, t += 8) {
      const type = w[t], target = w[t + 1], op = w[t + 2], code = w[t + 3];
      const dp = w[t + 4], dl = w[t + 5], rp = w[t + 6] >>> 2, rn = w[t + 7];
      switch (type) {
        case ACT_SEND:
          host.send(target, op === OP_TEXT ? dec.decode(u8.subarray(dp, dp + dl)) : u8.slice(dp, dp + dl).buffer);
          break;
        case ACT_BROADCAST: {
          const msg = op === OP_TEXT ? dec.decode(u8.subarray(dp, dp + dl)) : u8.slice(dp, dp + dl).buffer; // one ArrayBuffer for every member
          for (let k = 0; k < rn; k++) host.send(w[rp + k], msg);
          break;
        }
        case ACT_CLOSE:
          host.close(target, code, dl ? dec.decode(u8.subarray(dp, dp + dl)) : '');
          break;
        case ACT_ATTACH:
          host.attach(target, u8.slice(dp, dp + dl));
          break;
        case ACT_TIMER: // set (op 1: its record) or removed (op 0); code: the id's length
          host.timer?.(op, u8.slice(dp, dp + dl), code);
          timers = true;
          break;
        case ACT_HISTORY: // an event joined a room's history: its record, its slot in the room's ring
          host.history?.(u8.slice(dp, dp + dl), target);
          break;
      }
    }
    host.settle?.();
    if (timers) host.armTimers?.();
  }
}

// ---- sockets bound to sessions ---------------------------------------------

// Close codes a peer may send but an endpoint may not put on the wire.
// Close `ws` with `code` as it goes on the wire (the core's rule, wsx_wire_code:
// 1005, 1006, 1015 and reserved codes become a Close without a code).
function closeSocket(core, ws, code, reason) {
  const wire = core.x.wsx_wire_code(code);
  try {
    if (wire) ws.close(wire, reason);
    else ws.close();
  } catch {
    try { ws.close(1000); } catch { /* already closed */ }
  }
}

/** The handle <-> socket table of one app context (a WsedgeContext), and the action executor. */
class SocketHost {
  constructor(cx) {
    this.cx = cx;
    this.sockets = [];          // handle -> WebSocket
    this.handles = new Map();   // WebSocket -> handle
    this.ended = [];            // [handle, code] to report to the core after a batch
    this.limits = [];           // handle -> the route's max_message_size
    this.expireAt = 0;          // the earliest session lifetime end known (ms), 0: none
    this.timerAt = 0;           // when the app's earliest timer is due (ms), 0: none
    this.armed = 0;             // when the clock is set to fire (ms), 0: not set
  }

  bind(h, ws) {
    this.sockets[h] = ws;
    this.handles.set(ws, h);
    this.limits[h] = this.cx.maxMessage(h);
  }

  // One clock for session lifetimes and the app's timers: set to the
  // earliest of both when that is earlier than what it is set to (a clock
  // that fires early finds nothing due and is set again). schedule: a
  // timer in the Worker, the object's alarm in a room.
  watch(h) {
    const end = this.cx.sessionEnd(h);
    if (end > 0 && (!this.expireAt || end < this.expireAt)) {
      this.expireAt = end;
      this.arm();
    }
  }

  armTimers() {
    this.timerAt = this.cx.timerNext();
    this.arm();
  }

  arm() {
    const a = this.expireAt, b = this.timerAt;
    const at = a && b ? Math.min(a, b) : a || b;
    if (at && (!this.armed || at < this.armed)) {
      this.armed = at;
      this.schedule(at);
    }
  }

  // The clock fired: sessions past their lifetime get 4000 "timeout", due
  // timers run; then it is set for what comes next.
  due() {
    this.armed = 0;
    this.expireAt = this.cx.expire();
    this.cx.execute(this);
    this.cx.runTimers();
    this.cx.execute(this);
    this.armTimers();
  }

  schedule(at) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.due(), Math.max(0, at - Date.now()));
  }

  unbind(h) {
    const ws = this.sockets[h];
    if (ws) this.handles.delete(ws);
    this.sockets[h] = undefined;
    return ws;
  }

  handleOf(ws) {
    const h = this.handles.get(ws);
    return h === undefined ? -1 : h;
  }

  // Never throws out of a handler. A send that fails on an open socket ends
  // that session as abnormal (1006); on a socket that is closing or closed
  // (restored during a wake so its own close can be processed) it is
  // skipped: its webSocketClose ends the session with the peer's code. The
  // state is read only then: a getter per member per broadcast is not free.
  send(h, msg) {
    const ws = this.sockets[h];
    if (!ws) return;
    try {
      ws.send(msg);
    } catch {
      if (ws.readyState < NOT_OPEN) this.ended.push([h, 1006, '']);
    }
  }

  // The core decided to close: send the Close, end the session in the core
  // once this batch is done (its leave events are the next batch).
  close(h, code, reason) {
    const ws = this.sockets[h];
    if (!ws) return;
    closeSocket(this.cx.core, ws, code, reason);
    this.ended.push([h, code, reason]);
  }

  attach() {}

  settle() {
    while (this.ended.length) {
      const [h, code, reason] = this.ended.shift();
      const ws = this.unbind(h);
      if (!ws) continue;
      this.detach(ws);
      this.cx.close(h, code, reason);
      this.cx.execute(this);
    }
  }

  detach() {}

  // The peer's Close arrived and its session ended.
  forget(ws) {
    this.detach(ws);
  }

  // A socket reported its end (close frame from the peer, or an error).
  peerClosed(ws, code, reason) {
    const h = this.handleOf(ws);
    if (h >= 0) {
      this.unbind(h);
      this.forget(ws);
      this.cx.close(h, code, reason);
      this.cx.execute(this);
    }
    closeSocket(this.cx.core, ws, code, reason); // always answer the peer's Close
  }

  message(ws, data) {
    const h = this.handleOf(ws);
    if (h < 0) return;
    // the route's max_message_size, decided before the bytes enter wasm
    // (UTF-16 length <= UTF-8 length <= 3 x it: most strings need no count)
    const lim = this.limits[h];
    const n = typeof data === 'string'
      ? (data.length > lim ? Infinity : data.length * 3 > lim ? enc.encode(data).length : 0)
      : data.byteLength;
    if (n > lim) {
      this.close(h, 1009, 'message too big'); // the native server's words (the frame engine's)
      this.settle();
      return;
    }
    this.cx.message(h, data);
    this.cx.execute(this);
  }

  failed(ws) {
    const h = this.handleOf(ws);
    if (h < 0) return;
    this.cx.error(h);
    this.cx.execute(this);
    if (this.sockets[h] === ws) {
      this.unbind(h);
      this.detach(ws);
      this.cx.close(h, 1006, '');
      this.cx.execute(this);
    }
    closeSocket(this.cx.core, ws, 1011, '');
  }
}

// ---- the Worker side ---------------------------------------------------------

export class WebSocketContext {
  constructor(host, request, response) {
    this.host = host;
    this.request = request;
    this.response = response;
    this._url = null;
  }

  /** The request's URL (parsed on first use; the core works from request.url). */
  get url() {
    return (this._url ??= new URL(this.request.url));
  }

  /** false when the core rejected the request; `response` then answers it. */
  get ok() {
    return this.response === null;
  }

  /**
   * Validate `request` with the core of `config.app` (default: the
   * isolate's default app): unknown path -> 404 JSON, a plain request on a
   * WebSocket route -> 400 JSON, a bad handshake -> the core's status
   * (400/403/405/426) with its headers and JSON body.
   * config.onFailedUpgrade({status, error, headers, request}) may return a
   * Response to use instead (Volo's on_failed_upgrade).
   */
  static fromRequest(request, config = {}) {
    const host = (config.app ?? theDefault()).worker;
    return WebSocketContext.judged(host, request, host.cx.validate(request, request.url), config.onFailedUpgrade);
  }

  // The context of a request the core judged `status` (its answer in the
  // worker context's result()).
  static judged(host, request, status, onFailedUpgrade) {
    if (status === 101) return new WebSocketContext(host, request, null);
    let response = host.cx.response();
    if (onFailedUpgrade) {
      const { headers, body } = host.cx.result();
      let error = null;
      try { error = JSON.parse(dec.decode(body)).error; } catch { /* not JSON */ }
      const r = onFailedUpgrade({ status, error, headers, request });
      if (r instanceof Response) response = r;
    }
    return new WebSocketContext(host, request, response);
  }


  /**
   * Accept in this Worker (WebSocketPair, standard accept): the session
   * lives in the app's Worker-side context and its handlers run in the core.
   */
  upgrade() {
    if (!this.ok) return this.response;
    const { cx } = this.host;
    cx.isUpgrade(this.request, this.request.url, null); // packs the request
    const h = cx.upgradePacked();
    if (h < 0) return cx.response();
    const headers = cx.upgradeHeaders();
    const [client, server] = Object.values(new WebSocketPair());
    // binary as ArrayBuffer on every compatibility date (newer dates default to Blob)
    try { server.binaryType = 'arraybuffer'; } catch { /* older runtimes: always ArrayBuffer */ }
    server.accept();
    const host = this.host;
    host.bind(h, server);
    server.addEventListener('message', (ev) => host.message(server, ev.data));
    server.addEventListener('close', (ev) => host.peerClosed(server, ev.code, ev.reason));
    server.addEventListener('error', () => host.failed(server));
    cx.open(h);
    cx.execute(host);
    if (host.sockets[h] === server) host.watch(h);
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  /** Forward the original request to a Durable Object (see upgradeDurable). */
  upgradeDurable(stub, init) {
    if (!this.ok) return this.response;
    return init ? upgradeDurableWith(stub, this.request, init) : upgradeDurable(stub, this.request);
  }
}

async function checkDurable(stub, request) {
  let res;
  try {
    res = await stub.fetch(request);
  } catch (e) {
    return jsonResponse(502, { error: `durable object unavailable: ${e && e.message ? e.message : e}` });
  }
  if (res.status === 101 && res.webSocket) return res;
  // The object's own core rejected the upgrade (e.g. the app's on_upgrade
  // hook refused a name): that answer is the client's answer.
  if (res.status >= 400 && res.status < 500) return res;
  return jsonResponse(502, { error: `durable object did not accept the upgrade (status ${res.status})` });
}

/**
 * Forward the ORIGINAL request (URL, query, headers) to a Durable Object
 * and return its 101 with the client socket; a 4xx from the object's core
 * passes through, anything else becomes 502 JSON.
 */
export function upgradeDurable(stub, request) {
  return checkDurable(stub, request);
}

/** Like upgradeDurable, with `init` (headers merged over the original's, other RequestInit fields). */
export function upgradeDurableWith(stub, request, init = {}) {
  const headers = new Headers(request.headers);
  if (init.headers) for (const [k, v] of new Headers(init.headers)) headers.set(k, v);
  return checkDurable(stub, new Request(request, { ...init, headers }));
}

const PAGE_HEADERS = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' };

/**
 * A wsedge app at the edge: its compiled module (instantiated once per
 * isolate and module) and what the Worker does with it. `export default app`
 * makes it the Worker: app.fetch routes every request from the app's own
 * table (the routes its wsedge_app() registered, with their Durable Object
 * bindings).
 */
export class WsedgeApp {
  /**
   * options: page (HTML for GET/HEAD / when no route claims it),
   * onFailedUpgrade (see WebSocketContext.fromRequest), autoResponse (the
   * rooms' heartbeat pair, see DurableSessions).
   */
  constructor(module, options = {}) {
    this.core = coreFor(module);
    this.module = module;
    this.options = { ...options };
    this.settings = settingsFrom(this.options.config);
    this._env = null;
    this._worker = null;
    // a method the runtime (or a caller) may take off the object
    this.fetch = this.fetch.bind(this);
    defaultApp ??= this;
  }

  /** The module's instance (shared by every app of this module in the isolate). */
  get instance() {
    return this.core.instance;
  }

  /** The Worker-side context: sessions accepted in the Worker (routes without `durable`). */
  get worker() {
    return (this._worker ??= new SocketHost(new WsedgeContext(this.core, this.settings)));
  }

  /**
   * Take the Worker's (or object's) env into the settings: its WSEDGE_*
   * vars over options.config. Called by fetch and WsedgeRoom; contexts made
   * afterwards use them (an idle Worker-side context is remade).
   */
  useEnv(env) {
    if (!env || this._env === env) return;
    this._env = env;
    // the runtime may hand a new env object per request: compare the vars,
    // so the Worker-side context is remade only when a setting changed
    const key = Object.values(SETTING_VARS).map((n) => (typeof env[n] === 'string' ? env[n] : '')).join('\0');
    if (key === this._envKey) return;
    this.settings = settingsFrom(this.options.config, env); // throws on a bad var
    this._envKey = key;
    if (this._worker && this._worker.cx.sessions() === 0) {
      this._worker.cx.free();
      this._worker = null;
    }
  }

  /** A fresh low-level context of this app (free() it when done). */
  context() {
    return new WsedgeContext(this.core, this.settings);
  }

  /** Heap figures of this app's module. */
  heapStats() {
    return this.core.heapStats();
  }

  /**
   * Where a request (or URL string) goes, from the app's table: {kind:
   * 'websocket'|'http'|'none', index, pattern, durable (binding name or
   * null), key (the object's name or null)}.
   */
  route(request) {
    const href = typeof request === 'string' ? request : request.url;
    return this.worker.cx.route(urlParts(href).target);
  }

  /**
   * The Worker's fetch handler: a route with `durable` goes to
   * env[durable].get(env[durable].idFromName(key)) — a WebSocket route
   * validated here first, then upgradeDurable; an HTTP route forwarded as
   * it is. A WebSocket route without `durable` is accepted in this Worker;
   * an HTTP route without it is answered by the core here. GET/HEAD / is
   * `options.page` when set and no route claims it. Anything else: the
   * core's 404 JSON.
   */
  fetch(request, env) {
    this.useEnv(env);
    const host = this.worker;
    const href = request.url;
    const { route: r, status } = host.cx.routeValidate(request, href);
    if (r.kind === 'http') {
      if (!r.durable) return this.http(request);
      const stub = this.stub(env, r);
      return stub ? stub.fetch(request) : missingBinding(r);
    }
    if (r.kind === 'none') {
      const { page } = this.options;
      if (page != null && (request.method === 'GET' || request.method === 'HEAD') && isRoot(urlParts(href).target)) {
        return new Response(request.method === 'HEAD' ? null : page, { headers: PAGE_HEADERS });
      }
    }
    // no route: the core's 404 (onFailedUpgrade may replace it)
    const ws = WebSocketContext.judged(host, request, status, this.options.onFailedUpgrade);
    if (!ws.ok) return ws.response;
    if (!r.durable) return ws.upgrade();
    const stub = this.stub(env, r);
    return stub ? upgradeDurable(stub, request) : missingBinding(r);
  }

  /** WebSocketContext.fromRequest with this app and its onFailedUpgrade. */
  validate(request) {
    return WebSocketContext.fromRequest(request, { app: this, onFailedUpgrade: this.options.onFailedUpgrade });
  }

  /** The Durable Object stub of route info `r` (null: env lacks the binding). */
  stub(env, r) {
    const ns = env && env[r.durable];
    if (!ns || typeof ns.idFromName !== 'function') return null;
    return ns.get(ns.idFromName(r.key));
  }

  // An HTTP route that runs in the Worker: the core answers (an upgrade
  // request there gets the core's upgrade answer: no WebSocket route, 404).
  async http(request) {
    const body = request.method === 'GET' || request.method === 'HEAD' ? null : new Uint8Array(await request.arrayBuffer());
    const host = this.worker, { cx } = host;
    if (cx.isUpgrade(request, request.url, body)) return this.validate(request).response;
    cx.httpPacked();
    const res = cx.response();
    cx.execute(host);
    return res;
  }
}

// A route names a binding the Worker's env does not have (wrangler.toml).
function missingBinding(r) {
  return jsonResponse(500, { error: `no Durable Object binding ${r.durable} in env (wrangler.toml)` });
}

function isRoot(target) {
  return target === '/' || target.startsWith('/?');
}

// ---- the Durable Object side -----------------------------------------------

// One app context per Durable Object id in this isolate, and only while the
// room has sessions. Module state outlives an evicted object, so a context
// must not: it is freed (1) when its last session ends (the next event starts
// a fresh one), (2) when a new instance of the same object starts, and
// (3) when the runtime collects the instance that owned it, where
// FinalizationRegistry exists (workerd: compatibility date >= 2025-05-05,
// or the enable_weak_ref flag). Without
// (3) a room evicted with members that never wakes in this isolate again
// keeps its context until the isolate ends.
const durableApps = new Map();
const reclaim = typeof FinalizationRegistry === 'function'
  ? new FinalizationRegistry(({ key, host }) => {
    if (durableApps.get(key) === host) durableApps.delete(key);
    if (host.flushTimer) host.flush(undefined, true);
    host.cx.free();
  })
  : null;

/** App contexts of Durable Objects alive in this isolate (tests, metrics). */
export function durableContexts() {
  return durableApps.size;
}

const ALARM_KEY = 'wsedge:alarm';
const TIMERS_KEY = 'wsedge:timers'; // set once the object has stored a timer
const HISTORY_KEY = 'wsedge:history'; // set once it has stored an event
const SEQ_KEY = 'wsedge:seq-reserved'; // numbers given may reach it while rows are queued
const FLOOR_KEY = 'wsedge:seq-floor'; // every room numbers above it (a lost write window)
const SEQ_RESERVE = 1000;
// what a reservation comes down to once every number given is stored: the
// next events' numbers need no write of their own; a context that loads
// without its predecessor's state (a new isolate, a restart) skips at most
// this many
const SEQ_STANDING = 16;
const INSERT_ROWS = Object.fromEntries([1, 4, 16].map((k) => [k,
  `INSERT OR REPLACE INTO wsedge_events (room, slot, seq, rec) VALUES ${Array(k).fill('(?, ?, ?, ?)').join(', ')}`]));

class DurableHost extends SocketHost {
  constructor(core, state, gone, settings, standing = 0) {
    super(new WsedgeContext(core, settings));
    this.state = state;
    this.gone = gone; // sockets whose session ended (outlives the context)
    this.flushMs = settings.historyFlushMs ?? 10;
    this.pending = []; // history rows queued for the window's commit, in order
    this.flushTimer = null;
    this.deferred = null; // a write to make with the window's commit (the wake count)
    this.reserved = 0; // SEQ_KEY as stored (0: none)
    this.top = 0; // the highest number this context's rooms have given or loaded
    // the alarm this object has set (kept beside it: a wake knows it at once)
    const kv = state.storage?.kv;
    try { this.armed = Number(kv?.get(ALARM_KEY)) || 0; } catch { this.armed = 0; }
    this.loadHistory(standing);
    this.loadTimers();
  }

  // A room's history (wse_history_add) in the object's SQLite storage: one
  // row per event, the last WSE_HISTORY_MAX (100) per room, loaded by a new
  // context (its sequence numbers go on across hibernation, eviction,
  // restarts). Written behind: every SQLite commit costs the object ~150 µs
  // of CPU and holds the event's output until it is made (a join + leave
  // cycle paid two; a woken room's first message waited for one), so an
  // event only queues its row, and a timer stores the queue in one commit
  // `historyFlushMs` later (0: each row with its event). The numbers queued
  // rows carry are covered by a reservation in storage (SEQ_KEY): an event
  // whose number is above it first stores one 1,000 ahead (the only write
  // an event makes, its output held until it is stored); once the queue is
  // stored it comes down to SEQ_STANDING above the highest number given. A
  // context built without its predecessor's state numbers above what that
  // one left (the floor), so no number is ever given twice (events not yet
  // stored when an object dies are lost: a client resuming from before
  // them sees the jump). The successor of an instance in the same isolate
  // stores its queue and keeps its reservation: no jump, no write.
  history(rec, slot) {
    if (!this.sqlite()) return;
    const rn = rec[1], room = rec.slice(2, 2 + rn).buffer;
    let seq = 0;
    for (let i = 7; i >= 0; i--) seq = seq * 256 + rec[2 + rn + i];
    const row = [room, slot, seq, rec.buffer];
    if (seq > this.top) this.top = seq;
    const kv = this.state.storage.kv;
    if (this.flushMs <= 0 || !kv) {
      this.storeRows([row]);
      return;
    }
    if (seq > this.reserved) {
      this.reserved = seq + SEQ_RESERVE;
      kv.put(SEQ_KEY, this.reserved);
    }
    // in order: a slot's newer event replaces an older one of the same
    // window as it does across windows (INSERT OR REPLACE, row by row)
    this.pending.push(row);
    this.flushTimer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  storeRows(rows, storage = this.state.storage) {
    if (!this.historyReady) {
      storage.sql.exec('CREATE TABLE IF NOT EXISTS wsedge_events (room BLOB NOT NULL, slot INTEGER NOT NULL, seq INTEGER NOT NULL, rec BLOB NOT NULL, PRIMARY KEY (room, slot))');
      try { storage.kv?.put(HISTORY_KEY, 1); } catch { /* no sync KV: loaded on every wake */ }
      this.historyReady = true;
    }
    // the core's ring of WSE_HISTORY_MAX slots per room: an event replaces
    // the one that many before it, one statement per event and no deletes
    // (a window's rows in statements of 16, 4 and 1 rows: three texts for
    // the runtime's statement cache, a sixteenth of the calls)
    for (let i = 0; i < rows.length;) {
      const k = rows.length - i >= 16 ? 16 : rows.length - i >= 4 ? 4 : 1;
      storage.sql.exec(INSERT_ROWS[k], ...rows.slice(i, i + k).flat());
      i += k;
    }
  }

  // Run fn with the window's commit (at once when rows are not written
  // behind): a write no event's output has to wait for.
  defer(fn) {
    if (this.flushMs <= 0) {
      fn();
      return;
    }
    this.deferred = fn;
    this.flushTimer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /**
   * Store the queued rows now (one commit); once nothing is queued the
   * window closes and the reservation comes down to SEQ_STANDING above the
   * highest number given. final: close the window now; end: the context
   * goes, its reservation with it. `storage`: a new instance of the object
   * storing what its evicted predecessor had queued. Returns false when
   * the storage refused (the rows are dropped; the reservation becomes the
   * floor).
   */
  flush(storage = this.state.storage, final = false, end = false) {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const d = this.deferred;
    this.deferred = null;
    if (d && storage === this.state.storage) d(); // (a successor keeps its own count)
    try {
      if (this.pending.length) {
        const rows = this.pending;
        this.pending = [];
        this.storeRows(rows, storage);
        if (!final) { // busy: the window stays open, the reservation held
          this.flushTimer = setTimeout(() => this.flush(), this.flushMs);
          return true;
        }
      }
      // every number given is stored: the reservation comes down to what
      // the next events need, or ends with the context
      const standing = end ? 0 : this.top + SEQ_STANDING;
      if (this.reserved && this.reserved !== standing) {
        if (standing) storage.kv.put(SEQ_KEY, standing);
        else storage.kv.delete(SEQ_KEY);
        this.reserved = standing;
      }
      // the window closed: a room that emptied inside it gives its context back now
      const idle = this.onIdle;
      this.onIdle = null;
      if (idle && !final) idle();
      return true;
    } catch (e) {
      this.pending = [];
      console.error(`wsedge: room history could not be stored (${e && e.message ? e.message : e}): events since the last write are lost, numbering goes on above them`);
      // their numbers were given: the floor for good, or the reservation's
      // end with this context would let them repeat
      try {
        const kv = storage.kv;
        if (this.reserved && kv) kv.put(FLOOR_KEY, Math.max(Number(kv.get(FLOOR_KEY)) || 0, this.reserved));
      } catch { /* storage refuses everything: the reservation stays as it was */ }
      return false;
    }
  }

  // The rows of a table this object has written (its KV flag is set), else none.
  storedRows(flag, query) {
    const st = this.state.storage;
    let has = true;
    try { if (st?.kv) has = !!st.kv.get(flag); } catch { /* no sync KV */ }
    if (!has || !st?.sql) return [];
    try { return st.sql.exec(query).toArray(); } catch { return []; }
  }

  // standing: the reservation a predecessor in this isolate left after
  // storing every row it had (0: none; a context built without it).
  loadHistory(standing = 0) {
    const rows = this.storedRows(HISTORY_KEY, 'SELECT rec, seq FROM wsedge_events ORDER BY room, seq');
    for (const row of rows) {
      const rc = this.cx.loadHistory(new Uint8Array(row.rec));
      if (rc < 0) console.error(`wsedge: a stored history entry could not be loaded (error ${rc}): skipped`);
      else if (row.seq > this.top) this.top = row.seq;
    }
    this.historyReady = rows.length > 0;
    const kv = this.state.storage?.kv;
    if (!kv) return;
    let floor = 0;
    try {
      floor = Number(kv.get(FLOOR_KEY)) || 0;
      const left = Number(kv.get(SEQ_KEY)) || 0;
      if (left && left === standing) {
        this.reserved = left; // every number below it is known here: it stands
      } else if (left) {
        // a reservation left by a context whose state is gone: numbers up
        // to it may have been given; kept as the floor for good
        if (left > floor) {
          floor = left;
          kv.put(FLOOR_KEY, floor);
          // more than a standing reservation above the stored rows: the
          // last context died with rows queued
          if (left - this.top > SEQ_STANDING) console.error(`wsedge: room history events after the last write were lost (the object ended with rows queued): numbering goes on above ${floor}`);
        }
        kv.delete(SEQ_KEY);
      }
    } catch { /* no sync KV */ }
    if (floor) {
      this.cx.historyFloor(floor);
      if (floor > this.top) this.top = floor;
    }
  }


  // Session lifetimes and the app's timers at the edge: the object's alarm
  // (it wakes a hibernated room by itself); WsedgeRoom.alarm() runs due().
  schedule(at) {
    const st = this.state.storage;
    if (!st || typeof st.setAlarm !== 'function') return;
    st.setAlarm(at);
    try { st.kv?.put(ALARM_KEY, at); } catch { /* no sync KV: re-derived on wakes */ }
  }

  // The app's timers live in the object's SQLite storage, one row per
  // timer (its record, keyed by its id): they survive hibernation,
  // eviction and restarts. A new context loads them back.
  // The object's SQL storage, or null (with one warning per isolate).
  sqlite() {
    const sql = this.state.storage?.sql;
    if (sql && typeof sql.exec === 'function') return sql;
    if (!DurableHost.warned) console.error('wsedge: timers and room history need a SQLite-backed Durable Object (new_sqlite_classes): they are kept in memory only');
    DurableHost.warned = true;
    return null;
  }

  timerSql() {
    const st = this.state.storage;
    if (this.sqlReady) return st.sql;
    if (!this.sqlite()) return null;
    st.sql.exec('CREATE TABLE IF NOT EXISTS wsedge_timers (id BLOB PRIMARY KEY, rec BLOB NOT NULL)');
    try { st.kv?.put(TIMERS_KEY, 1); } catch { /* no sync KV: loaded on every wake */ }
    this.sqlReady = true;
    return st.sql;
  }

  timer(op, rec, idLen) {
    const sql = this.timerSql();
    if (!sql) return;
    const id = rec.slice(1, 1 + idLen).buffer;
    if (op) sql.exec('INSERT OR REPLACE INTO wsedge_timers (id, rec) VALUES (?, ?)', id, rec.buffer);
    else sql.exec('DELETE FROM wsedge_timers WHERE id = ?', id);
  }

  loadTimers() {
    const st = this.state.storage;
    const rows = this.storedRows(TIMERS_KEY, 'SELECT id, rec FROM wsedge_timers ORDER BY rowid');
    for (const row of rows) {
      const rc = this.cx.loadTimer(new Uint8Array(row.rec));
      if (rc < 0) { // not a record this app can run: dropped, the others kept
        console.error(`wsedge: a stored timer could not be loaded (error ${rc}): dropped`);
        st.sql.exec('DELETE FROM wsedge_timers WHERE id = ?', row.id);
      }
    }
    this.sqlReady = rows.length > 0 || this.sqlReady;
    this.timerAt = this.cx.timerNext();
    this.arm();
  }

  attach(h, bytes) {
    const ws = this.sockets[h];
    if (!ws) return;
    try {
      ws.serializeAttachment(bytes.buffer);
    } catch {
      this.ended.push([h, 1011, '']);
    }
  }

  // The runtime has already dropped a socket whose Close it received from
  // the object's list (getWebSockets()), so its attachment need not be
  // cleared: one runtime call less per close.
  forget(ws) {
    this.gone.add(ws);
  }

  detach(ws) {
    this.gone.add(ws);
    // an ended session must not come back on the next wake
    try { ws.serializeAttachment(null); } catch { /* socket gone */ }
  }
}

// The object's lifetime counters (wakes, restored sessions) live in its
// storage so GET …/stats counts over the object's life, not per instance.
// SQLite-backed classes: the synchronous KV API (ctx.storage.kv) where the
// runtime has it, else SQL; other storage: get/put, read before any event.
const COUNTERS_KEY = 'wsedge:counters';

function counterStore(state) {
  const st = state.storage;
  if (!st) return null;
  if (st.kv && typeof st.kv.get === 'function') {
    return { get: () => st.kv.get(COUNTERS_KEY), put: (v) => st.kv.put(COUNTERS_KEY, v) };
  }
  if (st.sql && typeof st.sql.exec === 'function') {
    try {
      st.sql.exec('CREATE TABLE IF NOT EXISTS wsedge_counters (k INTEGER PRIMARY KEY, wakes INTEGER, restored INTEGER)');
      return {
        get: () => {
          const row = st.sql.exec('SELECT wakes, restored FROM wsedge_counters WHERE k = 1').toArray()[0];
          return row ? [row.wakes, row.restored] : undefined;
        },
        put: (v) => st.sql.exec('INSERT OR REPLACE INTO wsedge_counters (k, wakes, restored) VALUES (1, ?, ?)', v[0], v[1]),
      };
    } catch { /* not SQLite-backed: fall through */ }
  }
  if (typeof st.get === 'function') {
    return { async: true, get: () => st.get(COUNTERS_KEY), put: (v) => { st.put(COUNTERS_KEY, v).catch(() => {}); } };
  }
  return null;
}

function attachmentOf(ws) {
  let a = null;
  try { a = ws.deserializeAttachment(); } catch { /* unreadable: foreign */ }
  if (a instanceof ArrayBuffer) return new Uint8Array(a);
  if (ArrayBuffer.isView(a)) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return null; // foreign or missing: the core rejects an empty attachment
}

/**
 * The Durable Object glue (WsedgeRoom is built on it): construct it in the
 * object's constructor and forward fetch / webSocketMessage /
 * webSocketClose / webSocketError. Hibernation API only. On the first event
 * after a wake the SessionMap is rebuilt once from getWebSockets() +
 * deserializeAttachment() and cached in wasm memory.
 * options: app (a WsedgeApp; default: the isolate's default app),
 * autoResponse ([request, response] texts; default the app's option, else
 * the pair its C entry point declared with wse_app_heartbeat; null: none).
 */
export class DurableSessions {
  constructor(state, options = {}) {
    this.app = options.app ?? theDefault();
    this.core = this.app.core;
    this.state = state;
    this.key = String(state.id);
    const prev = durableApps.get(this.key);
    this.standing = 0; // the reservation this instance's first context keeps
    if (prev) { // evicted in this isolate: what it had queued is stored by its successor
      durableApps.delete(this.key);
      if (prev.flush(state.storage, true)) this.standing = prev.reserved;
      prev.cx.free();
    }
    this.gone = new WeakSet();
    this.saved = null; // lifetime counters kept while no context exists
    this._host = null;
    this.restored = false;
    let auto = options.autoResponse;
    if (auto === undefined) auto = this.app.options.autoResponse;
    if (auto === undefined) auto = this.core.heartbeat();
    if (auto) state.setWebSocketAutoResponse(new WebSocketRequestResponsePair(auto[0], auto[1]));
    this.counters = counterStore(state);
    if (this.counters?.async) {
      state.blockConcurrencyWhile(async () => { this.saved = await this.counters.get(); });
    } else if (this.counters) {
      this.saved = this.counters.get();
    }
  }

  /** The room's socket table and app context, created on first use (again after a release). */
  get host() {
    if (!this._host) {
      const host = new DurableHost(this.core, this.state, this.gone, this.app.settings, this.standing);
      this.standing = 0;
      this._host = host;
      durableApps.set(this.key, host);
      reclaim?.register(this, { key: this.key, host }, host);
      if (this.saved) this.seed(this.saved);
    }
    return this._host;
  }

  /** The room's app context (a WsedgeContext). */
  get context() {
    return this.host.cx;
  }

  seed(v) {
    if (Array.isArray(v) && v.length === 2) this.context.seed(Number(v[0]) || 0, Number(v[1]) || 0);
  }

  /**
   * Store the room's queued history rows now, in one commit (they are
   * written behind, at most historyFlushMs after their events): e.g.
   * before the object aborts itself. Returns false if the storage refused.
   */
  flushHistory() {
    const host = this._host;
    if (!host) return true;
    host.onIdle = null;
    const ok = host.flush(undefined, true);
    this.release(); // a room that emptied inside the window
    return ok;
  }

  /** After an event: a room without sessions gives its context back. */
  release() {
    const host = this._host;
    if (!host || host.ended.length || host.cx.sessions() !== 0) return;
    // inside a write window the context is kept (a room that empties and
    // fills again, as 1:1 rooms do, need not load its history back): the
    // window's end releases it
    if (host.flushTimer) {
      host.onIdle = () => this.release();
      return;
    }
    const { wakes, restored } = host.cx.counters();
    this.saved = [wakes, restored];
    reclaim?.unregister(host);
    if (durableApps.get(this.key) === host) durableApps.delete(this.key);
    host.flush(undefined, true, true); // nothing queued here: ends the reservation
    host.cx.free();
    this._host = null;
  }

  /** Restore `sockets` in one pass; sameWake: a later pass of a counted wake. */
  restoreSockets(sockets, atts, sameWake) {
    const { handles } = this.context.restore(atts, sameWake);
    if (this.counters) {
      const { wakes, restored } = this.context.counters();
      const { counters } = this;
      // written with the room's next history commit, not in the wake's own
      // event: a write there holds the broadcast that woke the room until
      // it commits (lost if the object dies first: a stat, one wake)
      this.host.defer(() => {
        try { counters.put([wakes, restored]); } catch { /* storage refused: stats stay per instance */ }
      });
    }
    handles.forEach((h, i) => {
      if (h >= 0) {
        this.host.bind(h, sockets[i]);
        this.host.watch(h); // a no-op unless it ends before the alarm set
      } else {
        this.gone.add(sockets[i]);
        closeSocket(this.core, sockets[i], 1011, 'session state could not be restored');
      }
    });
    this.context.execute(this.host);
  }

  /**
   * Rebuild the SessionMap from the sockets' attachments (once per
   * instance). `event` is the socket of the event being handled.
   */
  restore(event) {
    if (this.restored) {
      // workerd leaves a socket whose Close it has received out of
      // getWebSockets(): a member that closed while the object slept and
      // whose event comes after the wake's pass is restored now, so its
      // close runs in the core and the others get its leave.
      if (event && this.host.handleOf(event) < 0 && !this.gone.has(event)) {
        const a = attachmentOf(event);
        if (a) this.restoreSockets([event], [a], this.woke);
      }
      return;
    }
    this.restored = true;
    // Every socket that still carries a session is restored, closing ones
    // included (the event's own socket is added when getWebSockets() left
    // it out). A closing/closed socket without an attachment is a session
    // that already ended (detach() cleared it): nothing to restore. An open
    // socket without a readable attachment is foreign: the core rejects it.
    const all = this.state.getWebSockets();
    if (event && !all.includes(event)) all.push(event);
    const sockets = [], atts = [];
    for (const ws of all) {
      const a = attachmentOf(ws);
      if (a === null && ws.readyState >= NOT_OPEN) continue;
      sockets.push(ws);
      atts.push(a);
    }
    if (!sockets.length) return;
    this.woke = true;
    this.restoreSockets(sockets, atts, false);
  }

  async fetch(request) {
    this.restore();
    const body = request.method === 'GET' || request.method === 'HEAD' ? null : new Uint8Array(await request.arrayBuffer());
    const { host } = this;
    const { cx } = host;
    if (!cx.isUpgrade(request, request.url, body)) {
      cx.httpPacked();
      const res = cx.response();
      cx.execute(host);
      this.release();
      return res;
    }
    const h = cx.upgradePacked();
    if (h < 0) {
      const res = cx.response();
      this.release();
      return res;
    }
    const headers = cx.upgradeHeaders();
    const sid = cx.lastSessionId();
    const [client, server] = Object.values(new WebSocketPair());
    this.state.acceptWebSocket(server, sid ? [sid] : []);
    host.bind(h, server);
    cx.open(h);
    cx.execute(host);
    if (host.sockets[h] === server) host.watch(h);
    this.release(); // an on_open that closed at once
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  webSocketMessage(ws, message) {
    this.restore(ws);
    this.host.message(ws, message);
    this.release();
  }

  webSocketClose(ws, code, reason) {
    this.restore(ws);
    this.host.peerClosed(ws, code, reason);
    this.release();
  }

  webSocketError(ws) {
    this.restore(ws);
    this.host.failed(ws);
    this.release();
  }

  /**
   * The object's alarm: sessions past their lifetime are closed (4000), the
   * app's due timers run, the alarm is set for what comes next.
   */
  alarm() {
    this.restore();
    const host = this.host;
    try { this.state.storage?.kv?.delete(ALARM_KEY); } catch { /* no sync KV */ }
    host.due();
    this.release();
  }

  /** Send to one session by id from anywhere in the object (Rwf's Comms). */
  sendTo(sid, data) {
    this.restore();
    const cx = this.context;
    const r = cx.sendTo(sid, data);
    cx.execute(this.host);
    this.release();
    return r;
  }
}

// ---- the Durable Object class -----------------------------------------------

/**
 * A Durable Object class serving a wsedge app's durable routes on the
 * Hibernation API: `export class Room extends WsedgeRoom {}` is a complete
 * room (bind it in wrangler.toml under the name the C route declares).
 * `static app` picks a WsedgeApp other than the isolate's default;
 * `static options` are DurableSessions options (autoResponse). Hooks:
 * onRequest(request) answers requests whose path is in none of the app's
 * routes (default: the core's 404 JSON); alarm() is the user's.
 * this.sessions.sendTo(sessionId, data) reaches a member from anywhere.
 */
export class WsedgeRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const cls = this.constructor;
    const app = cls.app ?? theDefault();
    if (!(app instanceof WsedgeApp)) throw new TypeError(`wsedge: ${cls.name}.app is not a WsedgeApp`);
    app.useEnv(env);
    this.sessions = new DurableSessions(ctx, { ...cls.options, app });
  }

  /**
   * The object's alarm: session lifetimes (close 4000 "timeout") and the
   * app's timers (wse_timer_set). A subclass with alarms of its own calls
   * super.alarm() from its alarm().
   */
  alarm() {
    this.sessions.alarm();
  }

  fetch(request) {
    // Only a subclass that overrides onRequest pays for the route lookup:
    // the default answer is the core's, which fetch gives anyway.
    if (this.onRequest !== WsedgeRoom.prototype.onRequest && this.sessions.app.route(request).kind === 'none') {
      return this.onRequest(request);
    }
    return this.sessions.fetch(request);
  }

  /** A request the app's routes do not match (default: the core's 404 JSON). */
  onRequest(request) {
    return this.sessions.fetch(request);
  }

  webSocketMessage(ws, message) {
    this.sessions.webSocketMessage(ws, message);
  }

  webSocketClose(ws, code, reason, wasClean) {
    this.sessions.webSocketClose(ws, code, reason, wasClean);
  }

  webSocketError(ws, error) {
    this.sessions.webSocketError(ws, error);
  }
}
