// Graceful shutdown: SIGTERM -> stop accepting, Close 1001 "going away" to
// every client on every thread, wait (bounded) for their Close, exit 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, connect, rawWs, startServer, until } from './server.mjs';

function open(url) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  });
}

test('SIGTERM: every client sees 1001, the process exits 0', async () => {
  const srv = await startServer(['--threads', '2']);
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await open(`${srv.wsUrl}/chat/bye?name=c${i}`));
  for (let i = 0; i < 4; i++) clients.push(await open(`${srv.wsUrl}/ws`));
  const raw = await rawWs(srv.port, '/ws'); // answers the Close by hand
  const exit = srv.stop();
  const c = await raw.waitClose();
  assert.deepEqual({ code: c.code, reason: c.reason }, { code: 1001, reason: 'going away' });
  raw.send(8, Buffer.from([0x03, 0xe9]));
  await raw.waitEnd();
  for (const ws of clients) assert.deepEqual(await ws.closed, { code: 1001, reason: 'going away' });
  assert.deepEqual(await exit, { code: 0, signal: null }, srv.log());
  // nothing listens any more
  await assert.rejects(connect(srv.port));
});

test('SIGTERM with a client that never answers: bounded by --close-timeout, still exit 0', async () => {
  const srv = await startServer(['--threads', '1', '--close-timeout', '1']);
  const mute = await rawWs(srv.port, '/ws');
  const stalled = await connect(srv.port); // mid-handshake
  stalled.on('error', () => {});
  stalled.write('GET / HTTP/1.1\r\n');
  const exit = srv.stop();
  const c = await mute.waitClose();
  assert.equal(c.code, 1001);
  assert.deepEqual(await exit, { code: 0, signal: null }, srv.log());
  await until(() => mute.ended, 5000 * SLOW, 'TCP close');
});
