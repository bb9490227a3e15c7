// A room member that never reads while another floods the room: its queued
// output hits --max-write-buffer-size, it is closed with 1008, and every
// other member still receives everything, in order. --send-timeout 60: the
// stalls here are deliberate and outlast the default 10 s on a slow machine
// (sendtimeout.test.mjs covers the timeout).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, closePayload, rawWs, startServer, until } from './server.mjs';

let srv;
before(async () => {
  srv = await startServer(['--threads', '2', '--max-write-buffer-size', '1m', '--close-timeout', '30', '--send-timeout', '60']);
});
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

function join(room, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.wsUrl}/chat/${room}?name=${name}`, { perMessageDeflate: false, maxPayload: 0 });
    ws.bins = [];
    ws.texts = [];
    ws.on('message', (d, bin) => (bin ? ws.bins.push(Buffer.from(d)) : ws.texts.push(JSON.parse(d))));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('slow consumer closed with 1008; the others keep receiving in order', async () => {
  const room = 'flood';
  const slow = await rawWs(srv.port, `/chat/${room}?name=slow`);
  slow.socket.pause(); // never read: the kernel buffers fill, then ours
  const fast = await join(room, 'fast');
  const flooder = await join(room, 'flooder');
  await until(() => fast.texts.filter((e) => e.type === 'join').length === 2, 5000 * SLOW, 'joins');

  // 400 x 64 KiB = 25 MiB of binary relayed to the two other members, in
  // batches of 8 (512 KiB, half the bound) paced by the member that reads:
  // a reader is never more than a batch behind, the non-reader falls
  // behind by everything the kernel and then our queue will hold.
  const N = 400, SIZE = 64 * 1024, BATCH = 8;
  for (let i = 0; i < N; i++) {
    const b = Buffer.alloc(SIZE, i & 0xff);
    b.writeUInt32BE(i, 0);
    flooder.send(b);
    if ((i + 1) % BATCH === 0) await until(() => fast.bins.length === i + 1, 10000 * SLOW, `fast member to get ${i + 1}`);
  }
  await until(() => fast.bins.length === N, 10000 * SLOW, `fast member to get ${N} messages`);
  fast.bins.forEach((b, i) => {
    assert.equal(b.length, SIZE);
    assert.equal(b.readUInt32BE(0), i, 'order');
  });

  // the slow member: whatever fitted, then Close 1008
  slow.socket.resume();
  const c = await slow.waitClose(30000 * SLOW);
  assert.equal(c.code, 1008);
  assert.equal(c.reason, 'slow consumer');
  const got = c.skipped.filter((f) => f.opcode === 2).length;
  assert.ok(got < N, `slow member received ${got} of ${N}`);
  slow.send(8, closePayload(1008));
  await slow.waitEnd();

  // the others are still fine, and saw the slow member leave
  await until(() => fast.texts.some((e) => e.type === 'leave' && e.name === 'slow'), 5000 * SLOW, 'leave of slow');
  flooder.send('still alive');
  await until(() => fast.texts.some((e) => e.type === 'message' && e.text === 'still alive'), 5000 * SLOW, 'message after');
  assert.match(srv.log(), /slow consumer .* closing with 1008/);
  fast.close();
  flooder.close();
});

test('a ping flood from a client that never reads is bounded the same way', async () => {
  const earlier = (srv.log().match(/slow consumer/g) || []).length;
  const ws = await rawWs(srv.port, '/ws');
  ws.socket.pause();
  const { encodeFrame } = await import('./server.mjs');
  const ping = encodeFrame(9, Buffer.alloc(125, 1));
  // ~ 16 MiB of pongs owed: far past the kernel buffers and the 1 MiB bound
  const burst = Buffer.concat(Array.from({ length: 1000 }, () => ping));
  for (let i = 0; i < 120; i++) ws.sendRaw(burst);
  // stay deaf until the server has given up on us (its log says so)
  await until(() => (srv.log().match(/slow consumer/g) || []).length > earlier, 60000 * SLOW, 'the slow-consumer decision');
  ws.socket.resume();
  const c = await ws.waitClose(30000 * SLOW);
  assert.equal(c.code, 1008);
  assert.ok(c.skipped.every((f) => f.opcode === 0xA && f.payload.length === 125));
  ws.destroy();
});
