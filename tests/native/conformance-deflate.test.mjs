// RFC 7692 permessage-deflate conformance of the native server's echo route
// (/ws), in the spirit of Autobahn|Testsuite 12.x (many compressed messages
// of 16 B .. 128 KiB from five kinds of data, whole and fragmented) and 13.x
// (the same with different offers), plus the window and takeover parameters
// one by one. Raw handshakes and frames only: every response header is checked
// against RFC 7692 §7.1 and the offer it answers, the client compresses with
// exactly the negotiated parameters (node:zlib, §7.2.1 tail stripped) and
// inflates the server's frames with exactly the negotiated ones, so a server
// that referred to a previous message after server_no_context_takeover, or
// beyond its server_max_window_bits, fails to inflate here.
//
// Not duplicated from deflate.test.mjs: the RFC §7.2.3 byte examples, the
// threshold, bombs/limits, compressed control frames, npm ws/Python/Chromium.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { SLOW, closePayload, encodeFrame, rawWs, startServer } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });
// a failed test leaves its connection open: drop it, so that the server's
// shutdown does not wait out its close timeout for it
const conns = new Set();
afterEach(() => { for (const ws of conns) ws.destroy(); conns.clear(); });

const TEXT = 1, BINARY = 2, CLOSE = 8, PING = 9, PONG = 10;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const SYNC = zlib.constants.Z_SYNC_FLUSH;
const KNOWN = ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits'];

// ---- Sec-WebSocket-Extensions ---------------------------------------------------

/** Parse an extension list into [{ name, params: Map }] (no quoted values here). */
function parseExtensions(value) {
  return value.split(',').map((ext) => {
    const [name, ...ps] = ext.split(';').map((s) => s.trim());
    const params = new Map();
    for (const p of ps) {
      const eq = p.indexOf('=');
      const k = (eq < 0 ? p : p.slice(0, eq)).trim();
      const v = eq < 0 ? null : p.slice(eq + 1).trim();
      assert.ok(!params.has(k), `duplicate parameter ${k} in "${value}"`);
      params.set(k, v);
    }
    return { name, params };
  });
}

/** The offer as the client means it (RFC 7692 §7.1): flags and numbers;
 * client_max_window_bits: undefined = absent, true = without a value. */
function offerParams(ext) {
  const p = ext.params;
  const num = (k) => (p.get(k) == null ? (p.has(k) ? true : undefined) : Number(p.get(k)));
  return {
    snctt: p.has('server_no_context_takeover'), cnctt: p.has('client_no_context_takeover'),
    smwb: num('server_max_window_bits'), cmwb: num('client_max_window_bits'),
  };
}

/** Check an accepting response against §7.1 and the offers; returns the
 * parameters the connection then runs with. */
function checkResponse(offerHeader, resp) {
  assert.ok(resp, `offer "${offerHeader}" was declined`);
  const exts = parseExtensions(resp);
  assert.equal(exts.length, 1, `exactly one extension accepted: "${resp}"`);
  const [r] = exts;
  assert.equal(r.name, 'permessage-deflate');
  for (const [k, v] of r.params) {
    assert.ok(KNOWN.includes(k), `unknown response parameter ${k}`);
    if (k.endsWith('_no_context_takeover')) assert.equal(v, null, `${k} has no value`);
    // §7.1.2: a window parameter in a response always carries 8..15, no leading zero
    else assert.match(v ?? '', /^(8|9|1[0-5])$/, `${k}=${v}`);
  }
  const rp = offerParams(r);
  // the response must be an acceptable answer to one of the offers
  const offers = parseExtensions(offerHeader).filter((e) => e.name === 'permessage-deflate').map(offerParams);
  const fits = (o) =>
    (!o.snctt || rp.snctt) && // §7.1.1.1: accepted server_no_context_takeover is echoed
    (o.smwb === undefined || (typeof rp.smwb === 'number' && rp.smwb <= o.smwb)) && // §7.1.2.1
    (o.cmwb !== undefined || rp.cmwb === undefined) && // §7.1.2.2: no client_max_window_bits unless offered
    (typeof o.cmwb !== 'number' || rp.cmwb === undefined || rp.cmwb <= o.cmwb);
  const o = offers.find(fits);
  assert.ok(o, `response "${resp}" answers none of the offers in "${offerHeader}"`);
  return {
    serverTakeover: !rp.snctt,
    serverBits: rp.smwb ?? 15,
    // the client's own offer binds it too (§7.1.1.2, §7.1.2.2)
    clientTakeover: !rp.cnctt && !o.cnctt,
    clientBits: Math.min(rp.cmwb ?? 15, typeof o.cmwb === 'number' ? o.cmwb : 15),
  };
}

// ---- compression as a client ----------------------------------------------------

/** A permessage-deflate endpoint for one connection: compresses what we send
 * and inflates what the server sends with the negotiated parameters. A
 * context taken over is the previous compressed messages' data, the window
 * a streaming (in|de)flater would hold: the last 2^bits bytes. */
class Pmd {
  constructor(p) { this.p = p; this.txHist = Buffer.alloc(0); this.rxHist = Buffer.alloc(0); }

  compress(data) {
    const bits = Math.max(9, this.p.clientBits); // zlib's raw deflate has no 8-bit window
    const opts = { windowBits: bits, finishFlush: SYNC };
    // an 8-bit window: Huffman only (no back-references at all) stays within it
    if (this.p.clientBits < 9) opts.strategy = zlib.constants.Z_HUFFMAN_ONLY;
    else if (this.p.clientTakeover && this.txHist.length) opts.dictionary = this.txHist;
    const out = zlib.deflateRawSync(data, opts);
    assert.ok(out.subarray(-4).equals(TAIL));
    if (this.p.clientTakeover) this.txHist = Buffer.concat([this.txHist, data]).subarray(-(1 << this.p.clientBits));
    return out.subarray(0, -4);
  }

  inflate(payload) {
    // the negotiated window exactly, and small output chunks: a distance past
    // 2^bits (+ 64 bytes) is "invalid distance too far back"
    const opts = { windowBits: this.p.serverBits, finishFlush: SYNC, chunkSize: 64 };
    if (this.p.serverTakeover && this.rxHist.length) opts.dictionary = this.rxHist;
    const out = zlib.inflateRawSync(Buffer.concat([payload, TAIL]), opts);
    if (this.p.serverTakeover) this.rxHist = Buffer.concat([this.rxHist, out]).subarray(-(1 << this.p.serverBits));
    return out;
  }
}

/** Raw handshake offering `offer`; checks the response; { ws, pmd }. */
async function negotiate(offer) {
  const ws = await rawWs(srv.port, '/ws', { headers: { 'Sec-WebSocket-Extensions': offer } });
  conns.add(ws);
  const params = checkResponse(offer, ws.headers['sec-websocket-extensions']);
  return { ws, params, pmd: new Pmd(params) };
}

// ---- messages ----------------------------------------------------------------------

/** Deterministic PRNG (mulberry32). */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Five kinds of data like Autobahn 12.1-12.5's files, ~384 KiB each. */
function corpora() {
  const N = 384 << 10;
  const r = prng(7692);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const fill = (gen) => { const a = []; for (let n = 0; n < N;) { const s = gen(); a.push(s); n += Buffer.byteLength(s); } return Buffer.from(a.join('')); };
  const words = ['Habe', 'nun', 'ach', 'Philosophie', 'Juristerei', 'und', 'Medizin', 'leider', 'auch', 'Theologie',
    'durchaus', 'studiert', 'mit', 'heißem', 'Bemühn', 'Da', 'steh', 'ich', 'armer', 'Tor', 'bin', 'so', 'klug', 'als',
    'wie', 'zuvor', 'Heiße', 'Magister', 'Doktor', 'gar', 'zehen', 'Jahr', 'Schüler', 'Nase', 'Grübeln', 'Ängste', 'Öl'];
  const json = fill(() => JSON.stringify({ id: Math.floor(r() * 1e6), name: pick(words), tags: [pick(words), pick(words)],
    score: Math.round(r() * 1e4) / 100, active: r() < 0.5, geo: { lat: r() * 180 - 90, lon: r() * 360 - 180 } }) + ',\n');
  const faust = fill(() => `${pick(words)}${r() < 0.1 ? ',\n' : ' '}`);
  const html = fill(() => `<div class="${pick(['row', 'col', 'cell'])}"><a href="/${pick(words)}/${Math.floor(r() * 999)}">${pick(words)}</a></div>\n`);
  // an "image": a smooth 2-D field with noise; a "PDF": text runs between random (incompressible) streams
  const img = Buffer.alloc(N);
  for (let i = 0; i < N; i++) img[i] = (128 + 60 * Math.sin((i % 512) / 40) + 60 * Math.cos(Math.floor(i / 512) / 30) + r() * 8) & 0xff;
  const parts = [];
  for (let n = 0; n < N;) {
    const b = r() < 0.5 ? Buffer.from(`${pick(words)} obj << /Length ${Math.floor(r() * 9999)} >> stream\n`) : crypto.randomBytes(200 + Math.floor(r() * 800));
    parts.push(b);
    n += b.length;
  }
  return [
    ['12.1', 'JSON-like text', TEXT, json], ['12.2', 'image-like binary', BINARY, img], ['12.3', 'German text', TEXT, faust],
    ['12.4', 'HTML', TEXT, html], ['12.5', 'PDF-like binary', BINARY, Buffer.concat(parts)],
  ];
}
const CORPORA = corpora();

/** `size` bytes of `corpus` from `off`; for text cut on code point
 * boundaries, the last incomplete sequence replaced by spaces. */
function slice(corpus, off, size, op) {
  off %= corpus.length - size;
  if (op === TEXT) while ((corpus[off] & 0xc0) === 0x80) off++;
  const b = Buffer.from(corpus.subarray(off, off + size));
  if (op === TEXT) {
    let i = b.length - 1, k = 0;
    while (i >= 0 && (b[i] & 0xc0) === 0x80) { i--; k++; }
    const need = i < 0 ? 0 : b[i] >= 0xf0 ? 3 : b[i] >= 0xe0 ? 2 : b[i] >= 0xc0 ? 1 : 0;
    if (need !== k && i >= 0) b.fill(0x20, i);
  }
  assert.equal(b.length, size);
  return b;
}

/** Autobahn's sizes; counts bounded so that each size moves <= `budget`
 * bytes (Autobahn sends 1000 of each), every 4th message sent twice (with
 * context takeover the repeat is mostly a back-reference). */
const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
function messages(corpus, op, { sizes = SIZES, max = 1000, budget = 1 << 20 } = {}) {
  const out = [];
  for (const size of sizes) {
    const n = Math.max(4, Math.min(max, Math.floor(budget / size)));
    for (let i = 0; i < n; i++) {
      const m = { op, data: slice(corpus, i * Math.floor(size * 0.7) + size, size, op) };
      out.push(m);
      if (i % 4 === 0) out.push(m);
    }
  }
  return out;
}

/** Random text that repeats itself after `gap` bytes: only a window wider
 * than `gap` can refer back to the first half. */
function farRepeat(gap) {
  const x = Buffer.from(crypto.randomBytes(gap).toString('base64').slice(0, gap));
  return Buffer.concat([x, x]);
}

// ---- sending and checking ------------------------------------------------------

/** The next message from the server, decompressed when RSV1 is set. */
async function readMessage(c, timeout = 30000 * SLOW) {
  let f = await c.ws.next(timeout);
  assert.ok(f, 'connection ended; expected a message');
  assert.ok(f.opcode === TEXT || f.opcode === BINARY,
    `expected a data frame, got opcode ${f.opcode}${f.opcode === CLOSE ? ` code ${f.code} "${f.reason}"` : ''}`);
  assert.ok(f.rsv === 0 || f.rsv === 4, `first frame RSV ${f.rsv}`);
  const compressed = f.rsv === 4;
  const op = f.opcode;
  const parts = [f.payload];
  while (!f.fin) {
    f = await c.ws.next(timeout);
    assert.ok(f, 'connection ended inside a message');
    assert.equal(f.opcode, 0, 'continuation expected');
    assert.equal(f.rsv, 0, 'RSV1 only on the first frame (RFC 7692 §6)');
    parts.push(f.payload);
  }
  const payload = Buffer.concat(parts);
  return { op, compressed, data: compressed ? c.pmd.inflate(payload) : payload };
}

/** Frames for one message: compressed (RSV1 on the first frame only) unless
 * `plain`; split into `fragment`-byte frames when fragment > 0. */
function frames(c, { op, data }, { fragment = 0, plain = false } = {}) {
  const payload = plain ? data : c.pmd.compress(data);
  const rsv = plain ? 0 : 4;
  if (!fragment || payload.length <= fragment) return [encodeFrame(op, payload, { rsv })];
  const out = [];
  for (let i = 0; i < payload.length; i += fragment) {
    out.push(encodeFrame(i === 0 ? op : 0, payload.subarray(i, i + fragment),
      { rsv: i === 0 ? rsv : 0, fin: i + fragment >= payload.length }));
  }
  return out;
}

/** Send every message (in pipelined batches) and check each echo in order.
 * Returns how many echoes came back compressed. */
async function echoAll(c, msgs, { fragment = 0, plainEvery = 0 } = {}) {
  let compressed = 0;
  for (let i = 0; i < msgs.length;) {
    const batch = [];
    let bytes = 0;
    while (i < msgs.length && batch.length < 200 && bytes < (512 << 10)) {
      const plain = plainEvery > 0 && i % plainEvery === plainEvery - 1;
      batch.push(msgs[i]);
      bytes += msgs[i].data.length;
      c.ws.sendRaw(Buffer.concat(frames(c, msgs[i], { fragment, plain })));
      i++;
    }
    for (const m of batch) {
      const r = await readMessage(c);
      assert.equal(r.op, m.op, 'echo opcode');
      assert.equal(r.data.length, m.data.length, 'echo length');
      assert.ok(r.data.equals(m.data), `echo of a ${m.data.length}-byte message differs`);
      if (r.compressed) compressed++;
    }
  }
  return compressed;
}

async function closeNormally(c) {
  c.ws.send(CLOSE, closePayload(1000));
  const f = await c.ws.next(10000 * SLOW);
  assert.ok(f && f.opcode === CLOSE, 'Close expected');
  assert.equal(f.rsv, 0);
  assert.equal(f.code, 1000);
  await c.ws.waitEnd();
  assert.equal(c.ws.frames.length, 0, 'frames after the Close');
}

// ---- 12.x: default offer, five kinds of data -------------------------------------------

describe('12 permessage-deflate, default offer', () => {
  for (const [num, what, op, corpus] of CORPORA) {
    test(`${num}.1-${num}.10 ${what}: 16 B .. 128 KiB messages echo (compressed, context takeover)`, async () => {
      const c = await negotiate('permessage-deflate');
      assert.deepEqual(c.params, { serverTakeover: true, serverBits: 15, clientTakeover: true, clientBits: 15 });
      const msgs = messages(corpus, op, { max: 250, budget: 512 << 10 });
      const n = await echoAll(c, msgs);
      // (the server's threshold leaves its smallest echoes uncompressed)
      assert.ok(n >= msgs.filter((m) => m.data.length >= 1024).length, `only ${n} echoes compressed`);
      await closeNormally(c);
    });
    test(`${num}.11-${num}.18 ${what}: compressed messages auto-fragmented to 256 B`, async () => {
      const c = await negotiate('permessage-deflate');
      await echoAll(c, messages(corpus, op, { sizes: SIZES.slice(2), max: 60, budget: 256 << 10 }), { fragment: 256 });
      await closeNormally(c);
    });
  }
});

// ---- 13.x: different offers ------------------------------------------------------

// Autobahn 13.x's offers (request server_no_context_takeover /
// server_max_window_bits; 9, as zlib has no 8-bit raw window)
const OFFERS13 = [
  ['13.1', 'permessage-deflate'],
  ['13.2', 'permessage-deflate; server_no_context_takeover'],
  ['13.3', 'permessage-deflate; server_max_window_bits=9'],
  ['13.4', 'permessage-deflate; server_max_window_bits=15'],
  ['13.5', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9'],
  ['13.6', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=15'],
  ['13.7', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9, ' +
    'permessage-deflate; server_no_context_takeover, permessage-deflate'],
];

describe('13 permessage-deflate, different offers', () => {
  const mixed = (seed) => {
    const [, , op1, c1] = CORPORA[seed % 5];
    const [, , op2, c2] = CORPORA[(seed + 1) % 5];
    const a = messages(c1, op1, { max: 120, budget: 256 << 10 });
    const b = messages(c2, op2, { max: 120, budget: 256 << 10 });
    return a.flatMap((m, i) => (i < b.length ? [m, b[i]] : [m]));
  };
  OFFERS13.forEach(([num, offer], k) => {
    test(`${num} "${offer}": negotiated per §7.1, text and binary 16 B .. 128 KiB echo`, async () => {
      const c = await negotiate(offer);
      if (offer.includes('server_no_context_takeover')) assert.equal(c.params.serverTakeover, false);
      const msgs = mixed(k);
      // and the far repeats only a wider window than negotiated could shorten
      msgs.push({ op: TEXT, data: farRepeat(600) }, { op: TEXT, data: farRepeat(20000) });
      await echoAll(c, msgs);
      await closeNormally(c);
    });
  });
});

// ---- the parameters one by one -----------------------------------------------------

describe('RFC 7692 parameters', () => {
  // 8 included: the server honours it (zlib's 9-bit raw deflate never emits
  // a distance past 250), so its stream must inflate with a 256-byte window
  for (let bits = 8; bits <= 15; bits++) {
    test(`server_max_window_bits=${bits}: answered <= ${bits}; echoes inflate with that window, with and without takeover`, async () => {
      for (const snctt of ['', '; server_no_context_takeover']) {
        const c = await negotiate(`permessage-deflate; server_max_window_bits=${bits}${snctt}`);
        assert.ok(c.params.serverBits <= bits);
        // repeats just past the window (a server one bit wider would refer
        // back to them) and far past it; within a message, and across
        // messages (the same message twice)
        const near = { op: TEXT, data: farRepeat(bits < 15 ? (1 << bits) + 128 : 30000) };
        const far = { op: BINARY, data: farRepeat(20000) };
        await echoAll(c, [near, near, far, far, { op: BINARY, data: crypto.randomBytes(3000) }, near,
          ...messages(CORPORA[bits % 5][3], CORPORA[bits % 5][2], { sizes: [256, 4096, 65536], max: 20, budget: 128 << 10 })]);
        await closeNormally(c);
      }
    });
  }

  // RFC 7692 §7.1: an offer with an invalid value or a parameter without its
  // required value (or with a value it must not have) is declined
  const invalidOffers = [
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=x',
    'permessage-deflate; client_max_window_bits=7',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; client_no_context_takeover=1',
    'permessage-deflate; client_max_window_bits=10; client_max_window_bits=10',
  ];
  test(`${invalidOffers.length} invalid offers declined; the connection then works uncompressed, RSV1 -> 1002`, async () => {
    for (const offer of invalidOffers) {
      const ws = await rawWs(srv.port, '/ws', { headers: { 'Sec-WebSocket-Extensions': offer } });
      try {
        assert.equal(ws.headers['sec-websocket-extensions'], undefined, offer);
        const text = Buffer.from('compressible text, '.repeat(500));
        for (const [op, p] of [[TEXT, text], [BINARY, Buffer.alloc(10000, 7)], [TEXT, Buffer.alloc(0)]]) {
          ws.send(op, p);
          const f = await ws.next();
          assert.deepEqual([f.opcode, f.rsv, f.fin], [op, 0, true]);
          assert.ok(f.payload.equals(p));
        }
        ws.send(TEXT, zlib.deflateRawSync(text, { finishFlush: SYNC }).subarray(0, -4), { rsv: 4 });
        const f = await ws.next();
        assert.deepEqual([f.opcode, f.code], [CLOSE, 1002]);
        await ws.waitEnd();
        assert.equal(ws.frames.length, 0);
      } finally {
        ws.destroy();
      }
    }
  });

  test('an invalid offer followed by a valid one: the valid one is accepted', async () => {
    const offer = 'permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=10';
    const c = await negotiate(offer);
    assert.equal(c.params.serverBits <= 10, true);
    await echoAll(c, [{ op: TEXT, data: farRepeat(3000) }]);
    await closeNormally(c);
  });

  test('client_no_context_takeover: answered, every client message self-contained; server context kept unless asked', async () => {
    const c = await negotiate('permessage-deflate; client_no_context_takeover');
    assert.equal(c.params.clientTakeover, false);
    assert.equal(c.params.serverTakeover, true);
    const far = { op: TEXT, data: farRepeat(3000) };
    await echoAll(c, [far, far, far, ...messages(CORPORA[3][3], TEXT, { sizes: [64, 1024, 16384], max: 50, budget: 128 << 10 })]);
    await closeNormally(c);
  });

  test('client and server no context takeover together', async () => {
    const c = await negotiate('permessage-deflate; client_no_context_takeover; server_no_context_takeover');
    assert.deepEqual([c.params.clientTakeover, c.params.serverTakeover], [false, false]);
    const far = { op: BINARY, data: farRepeat(5000) };
    await echoAll(c, [far, far, ...messages(CORPORA[1][3], BINARY, { sizes: [64, 1024, 16384], max: 50, budget: 128 << 10 })]);
    await closeNormally(c);
  });

  test('client_max_window_bits without a value: answered with a window 8..15 (or none); client context taken over', async () => {
    const c = await negotiate('permessage-deflate; client_max_window_bits');
    assert.equal(c.params.clientTakeover, true);
    const far = { op: TEXT, data: farRepeat(20000) };
    await echoAll(c, [far, far, ...messages(CORPORA[0][3], TEXT, { sizes: [256, 8192, 131072], max: 30, budget: 256 << 10 })]);
    await closeNormally(c);
  });

  for (let bits = 8; bits <= 15; bits++) {
    test(`client_max_window_bits=${bits}: answered <= ${bits}; the server inflates a ${bits}-bit client stream`, async () => {
      const c = await negotiate(`permessage-deflate; client_max_window_bits=${bits}`);
      assert.ok(c.params.clientBits <= bits);
      // repeats just inside the window (a back-reference) and far outside it
      const near = { op: TEXT, data: farRepeat(Math.max(64, (1 << Math.max(9, bits)) - 300)) };
      const far = { op: BINARY, data: farRepeat(20000) };
      await echoAll(c, [near, near, far, far, ...messages(CORPORA[2][3], TEXT, { sizes: [64, 2048, 32768], max: 20, budget: 128 << 10 })]);
      await closeNormally(c);
    });
  }

  test('every parameter at once, window 10 both ways, fragmented to 100 B', async () => {
    const offer = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10';
    const c = await negotiate(offer);
    assert.deepEqual(c.params, { serverTakeover: false, serverBits: 10, clientTakeover: false, clientBits: 10 });
    const far = { op: TEXT, data: farRepeat(1200) };
    await echoAll(c, [far, far, ...messages(CORPORA[4][3], BINARY, { sizes: [16, 1000, 20000], max: 30, budget: 64 << 10 })], { fragment: 100 });
    await closeNormally(c);
  });

  test('compressed and uncompressed client messages interleaved with context takeover (only compressed ones feed the context)', async () => {
    const c = await negotiate('permessage-deflate; client_max_window_bits');
    const msgs = messages(CORPORA[0][3], TEXT, { sizes: [100, 3000, 40000], max: 40, budget: 256 << 10 });
    // every 3rd message goes out uncompressed (RSV1 clear): legal per message (RFC 7692 §6)
    await echoAll(c, msgs, { plainEvery: 3 });
    await closeNormally(c);
  });

  test('pings between the fragments of a compressed message; a compressed message split into 1-byte fragments', async () => {
    const c = await negotiate('permessage-deflate');
    const data = Buffer.from('ping me between compressed fragments '.repeat(300));
    const payload = c.pmd.compress(data);
    const third = Math.ceil(payload.length / 3);
    c.ws.sendRaw(encodeFrame(TEXT, payload.subarray(0, third), { rsv: 4, fin: false }));
    c.ws.send(PING, 'p1');
    let f = await c.ws.next();
    assert.deepEqual([f.opcode, f.rsv, f.payload.toString()], [PONG, 0, 'p1']);
    c.ws.sendRaw(encodeFrame(0, payload.subarray(third, 2 * third), { fin: false }));
    c.ws.send(PING, 'p2');
    f = await c.ws.next();
    assert.deepEqual([f.opcode, f.rsv, f.payload.toString()], [PONG, 0, 'p2']);
    c.ws.sendRaw(encodeFrame(0, payload.subarray(2 * third)));
    let r = await readMessage(c);
    assert.ok(r.op === TEXT && r.data.equals(data));
    const small = Buffer.from('Hello, Hello, Hello, compressed world');
    const p2 = c.pmd.compress(small);
    c.ws.sendRaw(Buffer.concat([...p2].map((b, i) => encodeFrame(i ? 0 : BINARY, Buffer.from([b]), { rsv: i ? 0 : 4, fin: i === p2.length - 1 }))));
    r = await readMessage(c);
    assert.ok(r.op === BINARY && r.data.equals(small));
    await closeNormally(c);
  });
});
