// Protocol violations and limits, written frame by frame on raw sockets:
// each must be answered with the exact close code, then the TCP close.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { closePayload, encodeFrame, rawWs, startServer } from './server.mjs';

let srv;
before(async () => {
  srv = await startServer(['--threads', '2', '--max-frame-size', '1024', '--max-message-size', '4096']);
});
after(async () => { const e = await srv.stop(); if (process.env.DBG) console.log(srv.log()); assert.deepEqual(e, { code: 0, signal: null }, srv.log()); });

async function expectClose(ws, code) {
  const c = await ws.waitClose();
  assert.equal(c.code, code, `close code (reason "${c.reason}")`);
  await ws.waitEnd();
  return c;
}

test('frame over --max-frame-size -> 1009 from the header alone', async () => {
  const ws = await rawWs(srv.port, '/ws');
  // announce 2000 bytes, send only the header and 10 bytes
  ws.sendRaw(encodeFrame(2, Buffer.alloc(10), { len: 2000 }).subarray(0, 8 + 10));
  await expectClose(ws, 1009);
});

test('a frame header announcing 2^40 bytes -> 1009', async () => {
  const ws = await rawWs(srv.port, '/ws');
  const h = Buffer.from([0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
  ws.sendRaw(h);
  await expectClose(ws, 1009);
});

test('message over --max-message-size through fragments -> 1009', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(2, Buffer.alloc(1000), { fin: false });
  for (let i = 0; i < 5; i++) ws.send(0, Buffer.alloc(1000), { fin: false });
  await expectClose(ws, 1009);
});

test('unmasked client frame -> 1002', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, 'not masked', { mask: false });
  await expectClose(ws, 1002);
});

test('invalid UTF-8 in a text message -> 1007', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, Buffer.from([0x68, 0x69, 0xc3, 0x28]));
  await expectClose(ws, 1007);
});

test('invalid UTF-8 fails fast inside an unfinished fragment -> 1007', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, Buffer.from([0x61, 0xff]), { fin: false });
  await expectClose(ws, 1007);
});

for (const op of [3, 7, 0xb, 0xf]) {
  test(`reserved opcode 0x${op.toString(16)} -> 1002`, async () => {
    const ws = await rawWs(srv.port, '/ws');
    ws.send(op, 'x');
    await expectClose(ws, 1002);
  });
}

test('RSV bits without an extension -> 1002', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, 'x', { rsv: 4 });
  await expectClose(ws, 1002);
});

test('fragmented control frame and oversized ping -> 1002', async () => {
  let ws = await rawWs(srv.port, '/ws');
  ws.send(9, 'x', { fin: false });
  await expectClose(ws, 1002);
  ws = await rawWs(srv.port, '/ws');
  ws.send(9, Buffer.alloc(126));
  await expectClose(ws, 1002);
});

test('continuation without a start -> 1002', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(0, 'orphan');
  await expectClose(ws, 1002);
});

test('invalid close codes -> 1002; a 1-byte close payload -> 1002', async () => {
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) {
    const ws = await rawWs(srv.port, '/ws');
    ws.send(8, closePayload(code));
    await expectClose(ws, 1002);
  }
  const ws = await rawWs(srv.port, '/ws');
  ws.send(8, Buffer.from([3]));
  await expectClose(ws, 1002);
});

test('valid close codes (incl. 3000-4999) are echoed', async () => {
  for (const code of [1000, 1001, 1003, 1011, 3000, 3999, 4999]) {
    const ws = await rawWs(srv.port, '/ws');
    ws.send(8, closePayload(code, 'r'));
    await expectClose(ws, code);
  }
  const ws = await rawWs(srv.port, '/ws');
  ws.send(8, Buffer.alloc(0));
  const f = await ws.next();
  assert.equal(f.opcode, 8);
  assert.equal(f.payload.length, 0, 'a Close without a code is answered with an empty Close');
  await ws.waitEnd();
});

test('other connections are unaffected by the violations', async () => {
  const ws = await rawWs(srv.port, '/ws');
  ws.send(1, 'fine');
  const f = await ws.next();
  assert.equal(f.payload.toString(), 'fine');
  ws.destroy();
});
