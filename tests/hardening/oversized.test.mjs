// Oversized input against build/wsedge: limits are enforced from the frame
// header (no allocation for an announced 2^40-byte frame), a message built
// from 1-byte fragments is cut at exactly max_message_size + 1, and a request
// head over 8 KiB is answered 431. --max-message-size is 1 MiB here so the
// "100 MB in 1-byte fragments" attack is cut after ~7 MB on the wire.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawWs, closePayload, mem, mib, parseResponse, rawExchange, startServer } from './lib.mjs';

const MAX_MESSAGE = 1 << 20;

describe('oversized input (native)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--threads', '1', '--max-message-size', String(MAX_MESSAGE)] });
  });
  after(async () => {
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null }, `server exit: ${srv.stderr().slice(-2000)}`);
  });

  async function warmEcho() {
    const ws = await RawWs.connect(srv.port, '/ws');
    await ws.send(2, Buffer.alloc(4096, 7));
    await ws.wait((w) => w.frames.length >= 1, 10000, 'warm-up echo');
    ws.destroy();
  }

  test('a frame header announcing 2^40 bytes -> Close 1009 at once, nothing allocated', async () => {
    await warmEcho();
    const ws = await RawWs.connect(srv.port, '/ws');
    await ws.send(1, 'hello');
    await ws.wait((w) => w.frames.length >= 1, 10000, 'echo before the attack');
    const m0 = mem(srv.pid);
    // FIN+binary, MASK, 127 -> 64-bit length 2^40, mask key; no payload follows.
    const hdr = Buffer.alloc(14);
    hdr[0] = 0x82;
    hdr[1] = 0x80 | 127;
    hdr.writeBigUInt64BE(1n << 40n, 2);
    hdr.writeUInt32BE(0x01020304, 10);
    await ws.write(hdr);
    const cf = await ws.waitClosed(10000);
    assert.ok(cf, 'expected a Close frame, got only a TCP close');
    assert.equal(cf.code, 1009);
    const m1 = mem(srv.pid);
    console.log(`2^40 header: RSS ${mib(m0.rss)} -> ${mib(m1.rss)}, VmSize ${mib(m0.size)} -> ${mib(m1.size)}`);
    assert.ok(m1.rss - m0.rss < 1024, `RSS grew by ${m1.rss - m0.rss} KiB`);
    assert.ok(m1.size - m0.size < 32 * 1024, `VmSize grew by ${m1.size - m0.size} KiB`);
    // finish the close handshake: the server then closes TCP
    await ws.send(8, closePayload(1009)).catch(() => {});
    await ws.wait((w) => w.ended, 10000, 'TCP close after the close handshake');
  });

  test('a 64-bit length with the most significant bit set -> Close 1002', async () => {
    const ws = await RawWs.connect(srv.port, '/ws');
    const hdr = Buffer.alloc(14);
    hdr[0] = 0x82;
    hdr[1] = 0x80 | 127;
    hdr.writeBigUInt64BE(1n << 63n, 2);
    await ws.write(hdr);
    const cf = await ws.waitClosed(10000);
    assert.ok(cf, 'expected a Close frame');
    assert.equal(cf.code, 1002);
    ws.destroy();
  });

  test(`a "100 MB" message in 1-byte fragments -> 1009 exactly past ${MAX_MESSAGE} bytes`, async () => {
    const ws = await RawWs.connect(srv.port, '/ws');
    const m0 = mem(srv.pid);
    // One 1-byte fragment on the wire: 0x00 (cont, FIN=0), 0x81 (mask, len 1),
    // a zero mask key, the byte. 65,536 of them per 448 KiB write.
    const PER = 65536;
    const chunk = Buffer.alloc(PER * 7);
    for (let i = 0; i < PER; i++) chunk.set([0x00, 0x81, 0, 0, 0, 0, 0x61], i * 7);
    const first = Buffer.from(chunk);
    first[0] = 0x02; // the message starts as binary, FIN=0
    let sent = 0;
    for (let k = 0; k < MAX_MESSAGE / PER; k++) {
      await ws.write(k === 0 ? first : chunk);
      sent += PER;
      assert.equal(ws.closeFrame, undefined, `closed early after ${sent} bytes`);
    }
    assert.equal(sent, MAX_MESSAGE);
    // A ping between fragments is legal: its pong proves the server took all
    // 1 MiB without closing (the limit is inclusive).
    await ws.send(9, 'sync');
    await ws.wait((w) => w.frames.some((f) => f.opcode === 10) || w.ended, 30000, 'pong after 1 MiB');
    assert.equal(ws.closeFrame, undefined, 'closed at exactly max_message_size');
    const pong = ws.frames.find((f) => f.opcode === 10);
    assert.equal(pong.payload.toString(), 'sync');
    // One more byte makes it max + 1.
    await ws.write(Buffer.from([0x00, 0x81, 0, 0, 0, 0, 0x61]));
    const cf = await ws.waitClosed(10000);
    assert.ok(cf, 'expected a Close frame');
    assert.equal(cf.code, 1009);
    const m1 = mem(srv.pid);
    console.log(`1-byte fragments: ${sent + 1} payload bytes in ${sent + 1} frames; RSS ${mib(m0.rss)} -> ${mib(m1.rss)}`);
    assert.ok(m1.rss - m0.rss < 16 * 1024, `RSS grew by ${m1.rss - m0.rss} KiB for a 1 MiB limit`);
    ws.destroy();
  });

  function padHead(total, target = '/healthz') {
    const pre = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: `;
    const post = '\r\n\r\n';
    const n = total - pre.length - post.length;
    assert.ok(n > 0);
    const s = pre + 'a'.repeat(n) + post;
    assert.equal(Buffer.byteLength(s), total);
    return s;
  }

  test('a request head of exactly 8192 bytes is served; 8193 bytes -> 431 JSON', async () => {
    const ok = await rawExchange(srv.port, padHead(8192));
    const r1 = parseResponse(ok.buf);
    assert.ok(r1, `no response to an 8192-byte head (${ok.ended}): ${ok.buf.toString().slice(0, 200)}`);
    assert.equal(r1.status, 200);

    const big = await rawExchange(srv.port, padHead(8193));
    const r2 = parseResponse(big.buf);
    assert.ok(r2, `no response to an 8193-byte head (${big.ended})`);
    assert.equal(r2.status, 431);
    assert.match(r2.headers['content-type'], /^application\/json/);
    assert.equal(typeof JSON.parse(r2.body).error, 'string');
    assert.equal(big.ended, 'end', 'server must close after 431');
  });

  test('an unterminated head growing past 8 KiB -> 431 without waiting for its end', async () => {
    const head = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ' + 'a'.repeat(9000);
    const r = await rawExchange(srv.port, head, 10000);
    const res = parseResponse(r.buf);
    assert.ok(res, `no 431 (${r.ended}): ${r.buf.toString().slice(0, 200)}`);
    assert.equal(res.status, 431);
    assert.equal(res.reason, 'Request Header Fields Too Large');
    assert.equal(typeof JSON.parse(res.body).error, 'string');
    assert.equal(r.ended, 'end');
    assert.ok(srv.alive());
  });

  test('a head with 200 headers (under 8 KiB) -> 431', async () => {
    let s = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n';
    for (let i = 0; i < 200; i++) s += `X-${i}: v\r\n`;
    s += '\r\n';
    assert.ok(s.length < 8192);
    const r = await rawExchange(srv.port, s);
    const res = parseResponse(r.buf);
    assert.ok(res, `no response (${r.ended})`);
    assert.equal(res.status, 431);
  });
});
