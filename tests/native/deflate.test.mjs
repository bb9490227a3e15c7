// permessage-deflate (RFC 7692) on the native server with real clients:
// npm ws (every takeover/window combination), Python websockets 10.4, and a
// raw client for exact bytes (RFC 7692 §7.2.3 examples), the threshold, a
// decompression bomb (1009), compressed control frames and RSV1 on a
// continuation (1002), bad data (1007), broadcast to mixed members across
// two threads, /stats memory, and the flags/env that turn it off or tune it.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { SLOW, closePayload, encodeFrame, rawWs, roundTrip, runCli, runPythonClient, startServer, until } from './server.mjs';

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
const MAX_MSG = 4 << 20;

/** RFC 7692 §7.2.1: raw DEFLATE, sync flush, the 00 00 ff ff tail removed. */
function compress(buf, windowBits = 15) {
  const out = zlib.deflateRawSync(Buffer.from(buf), { ...SYNC, windowBits });
  assert.ok(out.subarray(-4).equals(TAIL));
  return out.subarray(0, -4);
}

/** A client-side inflater; with takeover the previous messages are the
 * dictionary (what a streaming inflater's window holds). */
class Inflater {
  constructor(takeover = true) { this.takeover = takeover; this.history = Buffer.alloc(0); }
  inflate(payload) {
    const opts = { ...SYNC };
    if (this.takeover && this.history.length) opts.dictionary = this.history;
    const out = zlib.inflateRawSync(Buffer.concat([payload, TAIL]), opts);
    if (this.takeover) this.history = Buffer.concat([this.history, out]).subarray(-32768);
    return out;
  }
}

function offer(ws) {
  return new Promise((resolve) => ws.once('upgrade', (res) => resolve(res.headers['sec-websocket-extensions'])));
}

function open(url, opts = {}) {
  const ws = new WebSocket(url, { maxPayload: 0, ...opts });
  const header = offer(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', async () => { ws.extHeader = await header; resolve(ws); });
    ws.once('error', reject);
  });
}

function closed(ws) {
  return new Promise((r) => ws.once('close', (code) => r(code)));
}

async function stats(srv) {
  const r = await fetch(`${srv.url}/stats`);
  assert.equal(r.status, 200);
  return r.json();
}

const DEFLATE = { 'Sec-WebSocket-Extensions': 'permessage-deflate' };

describe('threshold 0, 2 threads, 4 MiB messages', () => {
  let srv;
  before(async () => {
    srv = await startServer(['--threads', '2', '--deflate-threshold', '0', '--max-message-size', String(MAX_MSG)]);
  });
  after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

  test('npm ws (default perMessageDeflate): negotiated, echoes, and the wire carries compressed bytes', async () => {
    const ws = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
    assert.equal(ws.extHeader, 'permessage-deflate; client_max_window_bits=15');
    assert.equal(ws.extensions, 'permessage-deflate');
    try {
      for (const n of [0, 1, 5, 125, 126, 127, 65535, 65536, 100000]) {
        const bin = crypto.randomBytes(n);
        let r = await roundTrip(ws, bin, true);
        assert.equal(r.isBinary, true);
        assert.ok(r.d.equals(bin), `binary ${n}`);
        const text = 'é'.repeat(n >> 1) + (n & 1 ? 'x' : '');
        r = await roundTrip(ws, text, false);
        assert.equal(r.isBinary, false);
        assert.equal(r.d.toString(), text, `text ${n}`);
      }
      // 1 MiB of repetitive text: far fewer bytes come back than were echoed
      const text = 'wsedge permessage-deflate '.repeat(40330).slice(0, 1 << 20);
      const before = ws._socket.bytesRead;
      const r = await roundTrip(ws, text, false);
      assert.equal(r.d.toString(), text);
      const wire = ws._socket.bytesRead - before;
      assert.ok(wire < (1 << 20) / 50, `1 MiB echo took ${wire} bytes on the wire`);
    } finally {
      ws.close();
    }
  });

  // Every combination a client can offer: both takeover flags, both window
  // parameters; the exact response header and echoes that reuse the context.
  const combos = [];
  for (const serverNoContextTakeover of [false, true])
    for (const clientNoContextTakeover of [false, true])
      for (const clientMaxWindowBits of [true, 9, 12, 15])
        for (const serverMaxWindowBits of [undefined, 9, 11, 15])
          combos.push({ serverNoContextTakeover, clientNoContextTakeover, clientMaxWindowBits, serverMaxWindowBits });
  test(`npm ws: ${combos.length} parameter combinations negotiate exactly and echo`, async () => {
    const base = 'the quick brown fox jumps over the lazy dog; ';
    const big = Buffer.from(base.repeat(2000));
    for (const c of combos) {
      const opts = { threshold: 0, serverNoContextTakeover: c.serverNoContextTakeover,
        clientNoContextTakeover: c.clientNoContextTakeover, clientMaxWindowBits: c.clientMaxWindowBits };
      if (c.serverMaxWindowBits) opts.serverMaxWindowBits = c.serverMaxWindowBits;
      const ws = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: opts });
      let want = 'permessage-deflate';
      if (c.serverNoContextTakeover) want += '; server_no_context_takeover';
      if (c.clientNoContextTakeover) want += '; client_no_context_takeover';
      if (c.serverMaxWindowBits) want += `; server_max_window_bits=${c.serverMaxWindowBits}`;
      want += `; client_max_window_bits=${c.clientMaxWindowBits === true ? 15 : c.clientMaxWindowBits}`;
      assert.equal(ws.extHeader, want, JSON.stringify(c));
      for (let k = 0; k < 3; k++) {
        let r = await roundTrip(ws, 'Hello', false);
        assert.equal(r.d.toString(), 'Hello');
        r = await roundTrip(ws, big, true);
        assert.ok(r.d.equals(big), `big echo ${k} ${JSON.stringify(c)}`);
      }
      const code = closed(ws);
      ws.close(1000);
      assert.equal(await code, 1000);
    }
  });

  test('npm ws clientMaxWindowBits 8: answered 8 (never above the offer), echoes', async () => {
    const ws = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0, clientMaxWindowBits: 8 } });
    assert.equal(ws.extHeader, 'permessage-deflate; client_max_window_bits=8');
    const text = 'window of eight bits '.repeat(500);
    for (let k = 0; k < 2; k++) assert.equal((await roundTrip(ws, text, false)).d.toString(), text);
    ws.close();
  });

  test('raw: RFC 7692 §7.2.3 "Hello" frames in, exact compressed frames out (context taken over)', async () => {
    const ws = await rawWs(srv.port, '/ws', { headers: DEFLATE });
    assert.equal(ws.headers['sec-websocket-extensions'], 'permessage-deflate');
    const hello = Buffer.from('f248cdc9c90700', 'hex');
    const inf = new Inflater();
    ws.send(1, hello, { rsv: 4 });
    let f = await ws.next();
    assert.deepEqual([f.fin, f.rsv, f.opcode, f.payload.toString('hex')], [true, 4, 1, 'f248cdc9c90700']);
    assert.equal(inf.inflate(f.payload).toString(), 'Hello');
    ws.send(1, hello, { rsv: 4 });
    f = await ws.next();
    assert.deepEqual([f.rsv, f.payload.toString('hex')], [4, 'f200110000']); // §7.2.3.2
    assert.equal(inf.inflate(f.payload).toString(), 'Hello');
    // the client's side of the window: "Hello" referring to its earlier one
    ws.send(1, Buffer.from('f200110000', 'hex'), { rsv: 4 });
    f = await ws.next();
    assert.equal(f.rsv, 4);
    assert.equal(inf.inflate(f.payload).toString(), 'Hello');
    // §7.2.3.1 fragmented, §7.2.3.3 stored block, §7.2.3.4 BFINAL, §7.2.3.5 two blocks
    ws.send(1, Buffer.from('f248cd', 'hex'), { rsv: 4, fin: false });
    ws.send(0, Buffer.from('c9c90700', 'hex'));
    ws.send(1, Buffer.from('000500faff48656c6c6f00', 'hex'), { rsv: 4 });
    ws.send(1, Buffer.from('f348cdc9c9070000', 'hex'), { rsv: 4 });
    ws.send(1, Buffer.from('f248050000' + '00ffff' + 'cac9c90700', 'hex'), { rsv: 4 });
    for (let i = 0; i < 4; i++) {
      f = await ws.next();
      assert.equal(f.rsv, 4);
      assert.equal(inf.inflate(f.payload).toString(), 'Hello');
    }
    ws.send(8, closePayload(1000));
    assert.equal((await ws.waitClose()).code, 1000);
    ws.destroy();
  });

  test('raw: server_no_context_takeover: every "Hello" is the same 7 bytes; empty message is 00', async () => {
    const ws = await rawWs(srv.port, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_no_context_takeover' } });
    assert.equal(ws.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover');
    for (let i = 0; i < 3; i++) {
      ws.send(2, compress('Hello'), { rsv: 4 });
      const f = await ws.next();
      assert.deepEqual([f.rsv, f.opcode, f.payload.toString('hex')], [4, 2, 'f248cdc9c90700']);
    }
    ws.send(1, Buffer.alloc(0), { rsv: 4 }); // an empty compressed message
    let f = await ws.next();
    assert.deepEqual([f.rsv, f.opcode, f.payload.toString('hex')], [4, 1, '00']);
    ws.send(1, Buffer.from([0]), { rsv: 4 });
    f = await ws.next();
    assert.deepEqual([f.rsv, f.payload.toString('hex')], [4, '00']);
    ws.destroy();
  });

  test('raw: client_max_window_bits=9 offered: a 9-bit window stream is inflated; server window honoured', async () => {
    const ws = await rawWs(srv.port, '/ws', {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits=9; server_max_window_bits=9' },
    });
    assert.equal(ws.headers['sec-websocket-extensions'], 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=9');
    const text = Buffer.from('abcdefghij'.repeat(30) + crypto.randomBytes(600).toString('hex') + 'abcdefghij'.repeat(30));
    ws.send(1, compress(text, 9), { rsv: 4 });
    const f = await ws.next();
    // a 9-bit inflater only decodes what was compressed within 512 bytes
    const back = zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), { ...SYNC, windowBits: 9 });
    assert.ok(back.equals(text));
    ws.destroy();
  });

  test('bomb: 100 MiB of zeros in ~100 KB -> 1009, server unharmed', async () => {
    const bomb = compress(Buffer.alloc(100 << 20));
    assert.ok(bomb.length < 200000, `bomb is ${bomb.length} bytes`);
    const ws = await rawWs(srv.port, '/ws', { headers: DEFLATE });
    ws.sendRaw(encodeFrame(2, bomb, { rsv: 4 }));
    const c = await ws.waitClose();
    assert.equal(c.code, 1009);
    assert.equal(c.skipped.length, 0);
    ws.destroy();
    const s = await stats(srv);
    assert.ok(s.deflate_memory_bytes < 64 << 20, `deflate memory ${s.deflate_memory_bytes}`);
    const ok = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
    assert.equal((await roundTrip(ok, 'still here', false)).d.toString(), 'still here');
    ok.close();
  });

  test('a compressed message just over the limit -> 1009; at the limit echoes', async () => {
    const ws = await rawWs(srv.port, '/ws', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_no_context_takeover' } });
    ws.send(2, compress(Buffer.alloc(MAX_MSG, 7)), { rsv: 4 });
    const f = await ws.next(30000 * SLOW);
    assert.equal(f.rsv, 4);
    assert.equal(new Inflater(false).inflate(f.payload).length, MAX_MSG);
    ws.send(2, compress(Buffer.alloc(MAX_MSG + 1, 7)), { rsv: 4 });
    assert.equal((await ws.waitClose()).code, 1009);
    ws.destroy();
  });

  const violations = [
    ['a compressed Ping', [encodeFrame(9, compress('ping'), { rsv: 4 })], 1002],
    ['a compressed Pong', [encodeFrame(10, Buffer.alloc(0), { rsv: 4 })], 1002],
    ['a compressed Close', [encodeFrame(8, closePayload(1000), { rsv: 4 })], 1002],
    ['RSV1 on a continuation frame', [encodeFrame(1, Buffer.from('f248', 'hex'), { rsv: 4, fin: false }),
      encodeFrame(0, Buffer.from('cdc9c90700', 'hex'), { rsv: 4 })], 1002],
    ['RSV1 on a continuation of an uncompressed message', [encodeFrame(1, 'Hel', { fin: false }),
      encodeFrame(0, 'lo', { rsv: 4 })], 1002],
    ['RSV2', [encodeFrame(1, 'x', { rsv: 2 })], 1002],
    ['invalid DEFLATE data', [encodeFrame(2, Buffer.from('ffffff', 'hex'), { rsv: 4 })], 1007],
    ['compressed invalid UTF-8 text', [encodeFrame(1, compress(Buffer.from([0x6f, 0x6b, 0xc3, 0x28])), { rsv: 4 })], 1007],
  ];
  for (const [what, frames, code] of violations) {
    test(`raw: ${what} -> ${code}`, async () => {
      const ws = await rawWs(srv.port, '/ws', { headers: DEFLATE });
      for (const f of frames) ws.sendRaw(f);
      const c = await ws.waitClose();
      assert.equal(c.code, code);
      assert.equal(c.skipped.length, 0);
      await ws.waitEnd();
    });
  }

  test('raw: RSV1 without a negotiated extension -> 1002', async () => {
    const ws = await rawWs(srv.port, '/ws');
    assert.equal(ws.headers['sec-websocket-extensions'], undefined);
    ws.send(1, compress('Hello'), { rsv: 4 });
    assert.equal((await ws.waitClose()).code, 1002);
    ws.destroy();
  });

  test('headless Chromium: a page\'s WebSocket negotiates permessage-deflate and echoes', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, timeout: 30000 * SLOW,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      const res = await page.goto(`${srv.url}/`);
      assert.equal(res.status(), 200);
      const r = await page.evaluate((url) => new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        const msgs = ['Hello', 'Hello', 'ü'.repeat(20000), 'x'.repeat(70000)];
        const got = [];
        ws.onerror = () => reject(new Error('socket error'));
        ws.onopen = () => { for (const m of msgs) ws.send(m); };
        ws.onmessage = (e) => {
          got.push(e.data);
          if (got.length === msgs.length) {
            resolve({ ext: ws.extensions, same: got.every((g, i) => g === msgs[i]) });
            ws.close();
          }
        };
      }), `${srv.wsUrl}/ws`);
      assert.equal(r.ext, 'permessage-deflate; client_max_window_bits=15');
      assert.equal(r.same, true);
    } finally {
      await browser.close();
    }
  });

  test('python websockets 10.4: default offer negotiated, echoes', async () => {
    const r = await runPythonClient(`${srv.wsUrl}/ws`);
    assert.equal(r.header, 'permessage-deflate; client_max_window_bits=15');
    assert.deepEqual(r.extensions, ['permessage-deflate']);
    assert.deepEqual(r.agreed, { server_no_context_takeover: false, client_no_context_takeover: false,
      server_max_window_bits: 15, client_max_window_bits: 15 });
    assert.equal(r.close_code, 1000);
  });

  test('python websockets 10.4: every parameter offered', async () => {
    const r = await runPythonClient(`${srv.wsUrl}/ws`, { server_no_context_takeover: true, client_no_context_takeover: true,
      server_max_window_bits: 10, client_max_window_bits: 12 });
    assert.equal(r.header, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; ' +
      'server_max_window_bits=10; client_max_window_bits=12');
    assert.deepEqual(r.agreed, { server_no_context_takeover: true, client_no_context_takeover: true,
      server_max_window_bits: 10, client_max_window_bits: 12 });
    const r2 = await runPythonClient(`${srv.wsUrl}/ws`, { server_max_window_bits: 9, client_max_window_bits: 9 });
    assert.equal(r2.header, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=9');
    assert.equal(r2.close_code, 1000);
    // 8 bits: Python inflates our (9-bit zlib) stream with a 256-byte window
    for (const nctt of [false, true]) {
      const r3 = await runPythonClient(`${srv.wsUrl}/ws`, { server_max_window_bits: 8, client_max_window_bits: 9, server_no_context_takeover: nctt });
      assert.equal(r3.header, `permessage-deflate${nctt ? '; server_no_context_takeover' : ''}; server_max_window_bits=8; client_max_window_bits=9`);
      assert.equal(r3.agreed.server_max_window_bits, 8);
      assert.equal(r3.close_code, 1000);
    }
  });

  test('broadcast to mixed members on both threads: every member gets the message; shared frames identical', async () => {
    const room = 'deflate';
    const url = `${srv.wsUrl}/chat/${room}`;
    const opens = () => [...srv.log().matchAll(new RegExp(`open sid=\\S+ path=/chat/${room} peer=\\S+ thread=(\\d)`, 'g'))].map((m) => m[1]);
    let nOpen = 0;
    const threadOfLast = async () => {
      const k = ++nOpen;
      await until(() => opens().length >= k, 5000 * SLOW, 'open log line');
      return opens()[k - 1];
    };
    const members = [];
    const wsMember = async (name, perMessageDeflate) => {
      const ws = await open(`${url}?name=${name}`, { perMessageDeflate });
      ws.events = [];
      ws.bins = [];
      ws.deflate = !!perMessageDeflate;
      ws.on('message', (d, bin) => { if (bin) ws.bins.push(Buffer.from(d)); else ws.events.push(JSON.parse(d)); });
      ws.thread = await threadOfLast();
      members.push(ws);
      return ws;
    };
    const sender = await wsMember('sender', { threshold: 0 });
    await wsMember('takeover', { threshold: 0 });
    await wsMember('nctt', { threshold: 0, serverNoContextTakeover: true });
    await wsMember('plain', false);
    await wsMember('w10', { threshold: 0, serverMaxWindowBits: 10 });
    const raws = [];
    for (let i = 0; i < 4; i++) {
      const r = await rawWs(srv.port, `/chat/${room}?name=raw${i}`, {
        headers: { 'Sec-WebSocket-Extensions': `permessage-deflate; server_no_context_takeover${i === 3 ? '; server_max_window_bits=10' : ''}` },
      });
      r.thread = await threadOfLast();
      raws.push(r);
    }
    // deflate members on both event loops, so compression also happens on
    // the thread that receives a cross-thread delivery
    const dthreads = () => new Set([...members.filter((m) => m.deflate), ...raws].map((m) => m.thread));
    for (let extra = 0; dthreads().size < 2; extra++) {
      assert.ok(extra < 24, 'the kernel never spread connections over both threads');
      await wsMember(`extra${extra}`, { threshold: 0 });
    }
    const total = members.length + raws.length;
    await until(() => members.every((m) => m.events.some((e) => e.type === 'join' && e.count === total)), 5000 * SLOW, 'joins');
    const s = await stats(srv);
    assert.ok(s.deflate_connections >= total - 1, `deflate_connections ${s.deflate_connections}`);

    const text = 'a chat message long enough to be worth compressing, '.repeat(60).slice(0, 3000);
    const bin = Buffer.from('binary relay '.repeat(800));
    const plain = new Inflater(false);
    for (let k = 0; k < 2; k++) {
      for (const m of members) m.events.length = 0;
      sender.send(text);
      sender.send(bin);
      await until(() => members.every((m) => m.events.some((e) => e.type === 'message')) &&
        members.filter((m) => m !== sender).every((m) => m.bins.length === k + 1), 5000 * SLOW, 'broadcast');
      for (const m of members) {
        const e = m.events.find((x) => x.type === 'message');
        assert.equal(e.text, text);
        assert.equal(e.name, 'sender');
        if (m !== sender) assert.ok(m.bins[k].equals(bin));
      }
      // raw no-context-takeover members: compressed frames, each decodable
      // alone; equal settings -> the very same bytes
      const got = [];
      for (const r of raws) {
        let f, ev;
        do {
          f = await r.next();
          assert.equal(f.rsv, 4);
          ev = JSON.parse(plain.inflate(f.payload));
        } while (ev.type !== 'message');
        assert.equal(ev.text, text);
        const b = await r.next();
        assert.deepEqual([b.opcode, b.rsv], [2, 4]);
        assert.ok(plain.inflate(b.payload).equals(bin));
        got.push([f.payload, b.payload]);
      }
      for (const i of [1, 2]) {
        assert.ok(got[i][0].equals(got[0][0]), 'text frames of equal settings differ');
        assert.ok(got[i][1].equals(got[0][1]), 'binary frames of equal settings differ');
      }
    }
    assert.ok((await stats(srv)).deflate_memory_bytes > 0);
    for (const m of members) m.close();
    for (const r of raws) r.destroy();
  });
});

describe('defaults (threshold 64)', () => {
  let srv;
  before(async () => { srv = await startServer([]); });
  after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

  test('messages under the threshold go out uncompressed, larger ones compressed', async () => {
    const ws = await rawWs(srv.port, '/ws', { headers: DEFLATE });
    ws.send(1, compress('Hello'), { rsv: 4 });
    let f = await ws.next();
    assert.deepEqual([f.rsv, f.payload.toString()], [0, 'Hello']);
    const t63 = 'x'.repeat(63), t64 = 'y'.repeat(64);
    ws.send(1, t63);
    f = await ws.next();
    assert.deepEqual([f.rsv, f.payload.toString()], [0, t63]);
    ws.send(1, t64);
    f = await ws.next();
    assert.equal(f.rsv, 4);
    assert.equal(new Inflater().inflate(f.payload).toString(), t64);
    ws.destroy();
  });

  const table = [
    ['permessage-deflate', 'permessage-deflate'],
    ['permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_max_window_bits=8'],
    ['permessage-deflate; server_max_window_bits=8, permessage-deflate', 'permessage-deflate; server_max_window_bits=8'],
    ['permessage-deflate; client_max_window_bits=8', 'permessage-deflate; client_max_window_bits=8'],
    ['permessage-deflate; client_max_window_bits', 'permessage-deflate; client_max_window_bits=15'],
    ['permessage-deflate; foo=1', undefined],
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', undefined],
    ['permessage-deflate; client_max_window_bits=16, permessage-deflate; client_no_context_takeover',
      'permessage-deflate; client_no_context_takeover'],
    ['x-webkit-deflate-frame', undefined],
  ];
  for (const [o, want] of table) {
    test(`offer "${o}" -> ${want === undefined ? 'declined' : `"${want}"`}`, async () => {
      const ws = await rawWs(srv.port, '/ws', { headers: { 'Sec-WebSocket-Extensions': o } });
      assert.equal(ws.headers['sec-websocket-extensions'], want);
      ws.destroy();
    });
  }
});

describe('turned off and tuned', () => {
  test('--no-deflate: no extension header, RSV1 -> 1002; npm ws falls back', async () => {
    const srv = await startServer(['--no-deflate']);
    try {
      const raw = await rawWs(srv.port, '/ws', { headers: DEFLATE });
      assert.equal(raw.headers['sec-websocket-extensions'], undefined);
      raw.send(1, compress('Hello'), { rsv: 4 });
      assert.equal((await raw.waitClose()).code, 1002);
      raw.destroy();
      const ws = await open(`${srv.wsUrl}/ws`);
      assert.equal(ws.extHeader, undefined);
      assert.equal(ws.extensions, '');
      assert.equal((await roundTrip(ws, 'plain', false)).d.toString(), 'plain');
      ws.close();
      assert.equal((await stats(srv)).deflate_connections, 0);
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
  });

  test('--deflate-max-memory: past the budget new offers are declined, existing compressed sessions go on', async () => {
    const srv = await startServer(['--deflate-max-memory', '1', '--deflate-threshold', '0', '--threads', '1']);
    try {
      // nothing spent yet: the first client gets the extension
      const first = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
      assert.equal(first.extHeader, 'permessage-deflate; client_max_window_bits=15');
      assert.equal((await roundTrip(first, 'hello hello hello', false)).d.toString(), 'hello hello hello');
      assert.ok((await stats(srv)).deflate_memory_bytes > 1);
      // the budget (1 byte) is spent: the next offer is declined, the client still connects
      const second = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
      assert.equal(second.extHeader, undefined);
      assert.equal(second.extensions, '');
      assert.equal((await roundTrip(second, 'plain', false)).d.toString(), 'plain');
      // the first one keeps compressing
      assert.equal((await roundTrip(first, 'again again again', false)).d.toString(), 'again again again');
      assert.equal((await stats(srv)).deflate_connections, 1);
      first.close();
      second.close();
      await Promise.all([closed(first), closed(second)]);
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
  });

  test('--deflate-idle 1: an idle connection\'s compressor is freed; compression resumes without the old history', async () => {
    const srv = await startServer(['--deflate-idle', '1', '--deflate-threshold', '0', '--threads', '1']);
    try {
      const ws = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
      const text = 'an idle compressor holds its window and hash tables; ';
      const big = text.repeat(100);
      assert.equal((await roundTrip(ws, big, false)).d.toString(), big);
      const busy = (await stats(srv)).deflate_memory_bytes;
      // the compressor (window 15, memLevel 4) is ~142 KiB of the figure
      assert.ok(busy > 128 << 10, `deflate memory with a live compressor: ${busy}`);
      await until(async () => (await stats(srv)).deflate_memory_bytes < busy - (128 << 10), 10000 * SLOW,
        'the idle compressor to be freed');
      // the client's inflater keeps its window; our fresh stream refers to nothing before it
      for (let i = 0; i < 3; i++) {
        const before = ws._socket.bytesRead;
        const r = await roundTrip(ws, big + i, false);
        assert.equal(r.d.toString(), big + i);
        assert.ok(ws._socket.bytesRead - before < big.length / 10, 'the echo is compressed again');
      }
      ws.close();
      await closed(ws);
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
  });

  test('WSEDGE_DEFLATE=0: no extension header; --deflate overrides it', async () => {
    const srv = await startServer([], { env: { WSEDGE_DEFLATE: '0' } });
    try {
      const raw = await rawWs(srv.port, '/ws', { headers: DEFLATE });
      assert.equal(raw.headers['sec-websocket-extensions'], undefined);
      raw.destroy();
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
    const on = await startServer(['--deflate'], { env: { WSEDGE_DEFLATE: '0' } });
    try {
      const raw = await rawWs(on.port, '/ws', { headers: DEFLATE });
      assert.equal(raw.headers['sec-websocket-extensions'], 'permessage-deflate');
      raw.destroy();
    } finally {
      assert.deepEqual(await on.stop(), { code: 0, signal: null }, on.log());
    }
  });

  test('--deflate-server-no-context-takeover --deflate-window-bits 10 --deflate-level 1 --deflate-mem-level 2', async () => {
    const srv = await startServer(['--deflate-server-no-context-takeover', '--deflate-window-bits', '10',
      '--deflate-level', '1', '--deflate-mem-level', '2', '--deflate-threshold', '0']);
    try {
      const ws = await open(`${srv.wsUrl}/ws`, { perMessageDeflate: { threshold: 0 } });
      assert.equal(ws.extHeader, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=15');
      const text = 'tuned compression '.repeat(3000);
      for (let k = 0; k < 2; k++) assert.equal((await roundTrip(ws, text, false)).d.toString(), text);
      ws.close();
      const raw = await rawWs(srv.port, '/ws', { headers: DEFLATE });
      raw.send(1, compress('Hello'), { rsv: 4 });
      const f = await raw.next();
      // level 1 still encodes "Hello" alone as literals; decodable with a 10-bit window, no context
      assert.equal(zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), { ...SYNC, windowBits: 10 }).toString(), 'Hello');
      raw.destroy();
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
  });

  test('env: WSEDGE_DEFLATE_WINDOW_BITS=12, WSEDGE_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER=1, WSEDGE_DEFLATE_THRESHOLD=0', async () => {
    const srv = await startServer([], { env: { WSEDGE_DEFLATE_WINDOW_BITS: '12', WSEDGE_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER: '1',
      WSEDGE_DEFLATE_THRESHOLD: '0', WSEDGE_DEFLATE_LEVEL: '9', WSEDGE_DEFLATE_MEM_LEVEL: '9' } });
    try {
      const raw = await rawWs(srv.port, '/ws', { headers: DEFLATE });
      assert.equal(raw.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12');
      raw.send(1, 'Hi');
      const f = await raw.next();
      assert.equal(f.rsv, 4);
      assert.equal(new Inflater(false).inflate(f.payload).toString(), 'Hi');
      raw.destroy();
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
    }
  });

  const bad = [
    [['--deflate-level', '0'], /invalid --deflate-level '0'/],
    [['--deflate-level', '10'], /invalid --deflate-level '10'/],
    [['--deflate-mem-level', '0'], /invalid --deflate-mem-level '0'/],
    [['--deflate-mem-level', 'x'], /invalid --deflate-mem-level 'x'/],
    [['--deflate-window-bits', '8'], /invalid --deflate-window-bits '8'/],
    [['--deflate-window-bits', '16'], /invalid --deflate-window-bits '16'/],
    [['--deflate-threshold', '-1'], /invalid --deflate-threshold '-1'/],
    [['--deflate-threshold'], /option --deflate-threshold needs a value/],
  ];
  for (const [args, re] of bad) {
    test(`serve ${args.join(' ')} -> exit 2`, async () => {
      const r = await runCli(['serve', ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    });
  }
  for (const [k, v] of [['WSEDGE_DEFLATE', 'maybe'], ['WSEDGE_DEFLATE_LEVEL', '11'], ['WSEDGE_DEFLATE_WINDOW_BITS', '7'],
    ['WSEDGE_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER', 'yes please'], ['WSEDGE_DEFLATE_THRESHOLD', 'lots']]) {
    test(`${k}=${v} -> exit 2`, async () => {
      const r = await runCli(['serve'], { env: { [k]: v } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(k));
    });
  }

  test('--help lists the compression flags and their environment variables', async () => {
    const r = await runCli(['serve', '--help']);
    assert.equal(r.code, 0);
    for (const s of ['--no-deflate', '--deflate-threshold', '--deflate-level', '--deflate-mem-level', '--deflate-window-bits',
      '--deflate-server-no-context-takeover', 'WSEDGE_DEFLATE', 'WSEDGE_DEFLATE_THRESHOLD']) assert.ok(r.stdout.includes(s), s);
  });
});
