// Timers: server pings and the idle timeout (1001), the session lifetime
// (WSEDGE_WEBSOCKET_TIMEOUT -> 4000 "timeout"), the handshake timeout.
// Bounded waits only; nothing asserts how long anything took.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, closePayload, connect, rawWs, sleep, startServer, until } from './server.mjs';

test('idle timeout: pings sent; a client that never answers is closed with 1001, one that pongs stays', async () => {
  const srv = await startServer(['--threads', '1', '--ping-interval', '1', '--idle-timeout', '3']);
  try {
    const polite = await new Promise((res, rej) => {
      const ws = new WebSocket(`${srv.wsUrl}/ws`, { perMessageDeflate: false }); // ws answers pings itself
      ws.pings = 0;
      ws.on('ping', () => ws.pings++);
      ws.once('open', () => res(ws));
      ws.once('error', rej);
    });
    const mute = await rawWs(srv.port, '/ws');
    const c = await mute.waitClose(15000 * SLOW);
    assert.equal(c.code, 1001);
    assert.equal(c.reason, 'idle timeout');
    assert.ok(c.skipped.length >= 1 && c.skipped.every((f) => f.opcode === 9), 'pings before the close');
    mute.send(8, closePayload(1001));
    await mute.waitEnd();
    // the client that answered every ping is still open and working
    assert.ok(polite.pings >= 1);
    assert.equal(polite.readyState, WebSocket.OPEN);
    const echoed = new Promise((r) => polite.once('message', (d) => r(d.toString())));
    polite.send('still here');
    assert.equal(await echoed, 'still here');
    polite.close();
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
  }
});

test('session lifetime: WSEDGE_WEBSOCKET_TIMEOUT=1 -> close 4000 "timeout"', async () => {
  const srv = await startServer(['--threads', '2'], { env: { WSEDGE_WEBSOCKET_TIMEOUT: '1' } });
  try {
    const closed = await new Promise((res, rej) => {
      const ws = new WebSocket(`${srv.wsUrl}/chat/t?name=t`, { perMessageDeflate: false });
      ws.on('close', (code, reason) => res({ code, reason: reason.toString() }));
      ws.on('error', rej);
    });
    assert.deepEqual(closed, { code: 4000, reason: 'timeout' });
    assert.match(srv.log(), /close sid=\S+ room=t peer=\S+ code=4000/);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
  }
});

test('handshake timeout: a stalled request head is dropped without a response', async () => {
  const srv = await startServer(['--threads', '1', '--handshake-timeout', '1']);
  try {
    const s = await connect(srv.port);
    let got = 0;
    s.on('data', (d) => { got += d.length; });
    let closed = false;
    s.on('close', () => { closed = true; });
    s.on('error', () => {});
    s.write('GET /ws HTTP/1.1\r\nHost: x\r\n'); // never finished
    await until(() => closed, 10000 * SLOW, 'the server to drop the connection');
    assert.equal(got, 0);
    // a normal client is still served
    const r = await fetch(`${srv.url}/healthz`);
    assert.equal(r.status, 200);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
  }
});

test('a client that closes without a Close frame ends its session (1006 in the log)', async () => {
  const srv = await startServer(['--threads', '1']);
  try {
    const ws = await rawWs(srv.port, '/chat/gone?name=x');
    await ws.next(); // its join
    ws.destroy();
    await until(() => /code=1006/.test(srv.log()), 5000 * SLOW, 'the 1006 close line');
    await sleep(10);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log());
  }
});
