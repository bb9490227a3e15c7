// Echo on /ws with two independent clients (npm ws and Python websockets):
// text, binary, every length class boundary, 16 MiB, fragmented input,
// pings, and the close handshake.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { closePayload, rawWs, roundTrip, runPythonClient, startServer } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

function open(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0, ...opts });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('npm ws: text and binary at every length boundary, 16 MiB', async () => {
  const ws = await open(`${srv.wsUrl}/ws`);
  try {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 100000]) {
      const bin = crypto.randomBytes(n);
      let r = await roundTrip(ws, bin, true);
      assert.equal(r.isBinary, true);
      assert.ok(Buffer.from(r.d).equals(bin), `binary ${n}`);
      const text = 'é'.repeat(n >> 1) + (n & 1 ? 'x' : '');
      r = await roundTrip(ws, text, false);
      assert.equal(r.isBinary, false);
      assert.equal(r.d.toString(), text, `text ${n}`);
    }
    const big = crypto.randomBytes(16 << 20);
    const r = await roundTrip(ws, big, true);
    assert.equal(r.d.length, big.length);
    assert.ok(Buffer.from(r.d).equals(big), '16 MiB echo differs');
  } finally {
    ws.close();
  }
});

test('npm ws: many messages in flight keep their order', async () => {
  const ws = await open(`${srv.wsUrl}/ws`);
  const got = [];
  const n = 2000;
  const done = new Promise((r) => ws.on('message', (d) => { got.push(Number(d.toString())); if (got.length === n) r(); }));
  for (let i = 0; i < n; i++) ws.send(String(i));
  await done;
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i));
  ws.close();
});

test('npm ws: close handshake echoes the code', async () => {
  const ws = await open(`${srv.wsUrl}/ws`);
  const closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  ws.close(4321, 'bye');
  assert.deepEqual(await closed, { code: 4321, reason: '' });
});

test('raw: fragmented message with interleaved ping; ping payload echoed in pong', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, 'Hel', { fin: false });
  ws.send(9, 'p1');
  ws.send(0, 'lo, ', { fin: false });
  ws.send(0, 'wörld');
  const pong = await ws.next();
  assert.equal(pong.opcode, 0xA);
  assert.equal(pong.payload.toString(), 'p1');
  const msg = await ws.next();
  assert.equal(msg.opcode, 1);
  assert.equal(msg.fin, true);
  assert.equal(msg.payload.toString(), 'Hello, wörld');
  ws.send(8, closePayload(1000, 'done'));
  const c = await ws.next();
  assert.equal(c.opcode, 8);
  assert.equal(c.code, 1000);
  await ws.waitEnd();
});

test('raw: frames sent after the Close (own packets) cannot reset away the server\'s Close', async () => {
  // the server half-closes and drains: closing with the late frames unread
  // would send RST, and a reset can discard the Close before it is read
  for (let i = 0; i < 20; i++) {
    const ws = await rawWs(srv.port, '/ws');
    ws.send(8, closePayload(1000));
    ws.send(1, 'late');
    ws.send(9, 'p');
    const c = await ws.waitClose();
    assert.equal(c.code, 1000);
    assert.deepEqual(c.skipped, []); // no echo, no pong after the Close
    await ws.waitEnd();
  }
});

test('raw: a message split at every byte still arrives whole', async () => {
  const ws = await rawWs(srv.port, '/ws');
  const { encodeFrame } = await import('./server.mjs');
  const frame = encodeFrame(1, 'split across many tcp writes');
  for (const b of frame) { ws.sendRaw(Buffer.from([b])); await new Promise((r) => setImmediate(r)); }
  const f = await ws.next();
  assert.equal(f.payload.toString(), 'split across many tcp writes');
  ws.destroy();
});

test('python websockets 10.4: echo and close (permessage-deflate negotiated)', async () => {
  const r = await runPythonClient(`${srv.wsUrl}/ws`);
  assert.deepEqual(r.extensions, ['permessage-deflate']);
  assert.equal(r.close_code, 1000);
});
