// Fault injection against build/wsedge-asan (ASan+UBSan, leak check at
// exit): clients that vanish mid-frame or mid-head, resets while the server
// is writing a large message, half-closed sockets, and EMFILE under a low fd
// limit. After each, the server must still serve, report the right counts,
// and exit 0 on SIGTERM with no sanitizer report.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { BIN_ASAN, RawWs, fdCount, frame, parseResponse, sleep, startServer, stats, until, upgradeRequest, within } from './lib.mjs';

// CPU seconds the process has used (utime + stime, /proc/PID/stat).
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function clean(srv) {
  const log = srv.stderr();
  assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|runtime error|UndefinedBehaviorSanitizer/, log.slice(-4000));
}

async function echo(port, text = 'ping') {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  try {
    await within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 'echo open');
    const got = within(10000, new Promise((res) => ws.once('message', (d) => res(d.toString()))), 'echo reply');
    ws.send(text);
    return await got;
  } finally {
    ws.terminate();
  }
}

function observer(port, room) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat/${room}?name=observer`);
  const o = { ws, leaves: 0, joins: 0 };
  ws.on('message', (d) => {
    const ev = JSON.parse(d.toString());
    if (ev.type === 'leave') o.leaves++;
    if (ev.type === 'join') o.joins++;
  });
  o.open = within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 'observer open');
  return o;
}

describe('fault injection (native, ASan)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ bin: BIN_ASAN, args: ['--threads', '2', '--log-level', 'warn'] });
  });
  after(async () => {
    const e = await srv.stop();
    clean(srv);
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-4000));
  });

  test('50 members vanish mid-frame -> 50 leave events, server unharmed', async () => {
    const o = observer(srv.port, 'vanish');
    await o.open;
    const N = 50;
    for (let i = 0; i < N; i++) {
      const ws = await RawWs.connect(srv.port, `/chat/vanish?name=v${i}`);
      // header for a 1000-byte text frame, then 500 bytes, then gone
      const f = frame(1, Buffer.alloc(1000, 0x61));
      await ws.write(f.subarray(0, 8 + 500));
      ws.destroy();
    }
    await until(() => o.leaves === N, 20000, `${N} leave events (got ${o.leaves})`);
    assert.equal(o.joins, N + 1);
    // mid-fragmented-message and mid-head vanishers as well
    for (let i = 0; i < 20; i++) {
      const ws = await RawWs.connect(srv.port, `/chat/vanish?name=f${i}`);
      await ws.write(Buffer.concat([frame(1, 'part one ', { fin: false }), frame(0, 'two', { fin: false })]));
      ws.destroy();
      const s = net.connect(srv.port, '127.0.0.1');
      await new Promise((r) => s.on('connect', r));
      s.write(upgradeRequest('/chat/vanish?name=h', srv.port).slice(0, 40));
      s.destroy();
    }
    await until(() => o.leaves === N + 20, 20000, `${N + 20} leave events`);
    assert.equal(await echo(srv.port, 'after vanishers'), 'after vanishers');
    await until(async () => (await stats(srv.port)).websockets === 1, 10000, 'only the observer left');
    o.ws.close();
  });

  test('RST while the server writes an 8 MiB echo, 20 times -> server unharmed', async () => {
    const big = Buffer.alloc(8 << 20, 0x5a);
    for (let i = 0; i < 20; i++) {
      const ws = await RawWs.connect(srv.port, '/ws');
      ws.sock.pause(); // fill the kernel buffers: the server's write stays pending
      const read0 = ws.sock.bytesRead;
      await ws.send(2, big);
      // node reads up to its high-water mark while paused: the echo has begun
      await until(() => ws.sock.bytesRead > read0, 10000, 'the echo to start');
      await sleep(100);
      ws.sock.resetAndDestroy();
    }
    await until(async () => (await stats(srv.port)).websockets === 0, 15000, 'all reset connections to be released');
    assert.equal(await echo(srv.port, 'after resets'), 'after resets');
    assert.ok(srv.alive());
  });

  test('half-closed: FIN after the handshake -> the server closes its side too', async () => {
    const o = observer(srv.port, 'half');
    await o.open;
    const ws = await RawWs.connect(srv.port, '/chat/half?name=h');
    await until(() => o.joins === 2, 10000, 'join');
    ws.sock.end(); // FIN, still reading
    await ws.wait((w) => w.ended, 10000, 'the server to close after our FIN');
    assert.equal(ws.error, null);
    await until(() => o.leaves === 1, 10000, 'a leave for the half-closed member');
    o.ws.close();
    // FIN in the middle of a request head -> closed at once (well before the
    // 10 s handshake timeout), nothing sent
    const sock = net.connect(srv.port, '127.0.0.1');
    const got = [];
    sock.on('data', (d) => got.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.end('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await within(5000, new Promise((r) => sock.on('close', r)), 'the server to close a half-closed partial head');
    assert.equal(Buffer.concat(got).length, 0);
  });

  test('half-closed: a complete request then FIN -> the full response still arrives', async () => {
    const s = net.connect(srv.port, '127.0.0.1');
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    await new Promise((r) => s.on('connect', r));
    s.end('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await within(10000, new Promise((r) => s.on('close', r)), 'server close');
    const res = parseResponse(Buffer.concat(chunks));
    assert.ok(res, `no response: ${JSON.stringify(Buffer.concat(chunks).toString())}`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });
});

describe('EMFILE (native, ASan, ulimit -n 64)', () => {
  test('connections past the fd limit are refused; the server stays up and recovers', async () => {
    const srv = await startServer({ bin: BIN_ASAN, fdLimit: 64, args: ['--threads', '2', '--log-level', 'warn'] });
    const open = [];
    try {
      const fd0 = fdCount(srv.pid);
      let refused = 0;
      const why = new Set();
      for (let i = 0; i < 100 && refused < 5; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`, { handshakeTimeout: 3000 });
        const ok = await new Promise((res) => {
          ws.once('open', () => res(true));
          ws.once('error', (e) => { why.add(e.code || e.message); res(false); });
        });
        if (ok) open.push(ws);
        else {
          refused++;
          ws.terminate();
        }
      }
      const fdAtLimit = fdCount(srv.pid);
      console.log(`EMFILE: ${open.length} WebSockets accepted under ulimit -n 64 (server had ${fd0} fds idle, ${fdAtLimit} at the limit), then ${refused} refused (${[...why].join(', ')})`);
      assert.ok(refused >= 5, 'expected refusals at the fd limit');
      assert.ok(open.length >= 40, `only ${open.length} connections before EMFILE`);
      assert.ok(srv.alive(), 'server died at EMFILE');
      // bursts at the limit: both threads' accepts fail at once, and one
      // finds its spare fd taken by the other (the fd table is shared).
      // Every attempt is refused at once — none left hanging until its
      // handshake times out — and no loop spins on its listener.
      for (let b = 0; b < 3; b++) {
        const burst = await Promise.all(Array.from({ length: 120 }, () => new Promise((res) => {
          const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`, { handshakeTimeout: 3000 });
          ws.once('open', () => { open.push(ws); res('open'); });
          ws.once('error', (e) => { ws.terminate(); res(e.code || e.message); });
        })));
        const bad = burst.filter((r) => !['open', 'ECONNRESET', 'socket hang up', 'ECONNREFUSED'].includes(r));
        assert.deepEqual(bad, [], `burst ${b + 1}: ${bad.length} of 120 attempts not refused at once`);
      }
      const cpu0 = cpuSeconds(srv.pid);
      await sleep(1000);
      assert.ok(cpuSeconds(srv.pid) - cpu0 < 0.5, `the server spins at the fd limit (${(cpuSeconds(srv.pid) - cpu0).toFixed(2)} s of CPU in 1 s)`);
      // libuv refuses silently: the server says so itself (rate-limited)
      await until(() => /warn near the fd limit: \d+ connections open, ulimit -n 64; new connections are being refused/.test(srv.stderr()),
        5000, 'the fd-limit warning');
      assert.equal(srv.stderr().match(/near the fd limit/g).length, 1);
      // libuv's EMFILE trick accepts and closes the excess connections
      // (silently): the client sees its connection dropped before a 101
      for (const w of why) assert.ok(['ECONNRESET', 'socket hang up'].includes(w), `refused with ${w}`);
      // the accepted clients still work
      const c = open[0];
      const got = within(10000, new Promise((res) => c.once('message', (d) => res(d.toString()))), 'echo at the limit');
      c.send('at the limit');
      assert.equal(await got, 'at the limit');
      // free some fds: the server serves new clients again. (Not counted
      // exactly: a thread that stopped listening takes one back for its
      // listener, and libuv one per loop for its spare.) A thread that
      // stopped listening at the limit listens again within a tick.
      for (const ws of open.splice(0, 10)) ws.close(1000);
      await until(() => echo(srv.port, 'recovered').then((r) => r === 'recovered', () => false), 15000, 'a new client served');
      for (const ws of open.splice(0)) ws.close(1000);
      await until(() => fdCount(srv.pid) <= fd0, 15000, `server fds back to ${fd0}`);
      const s = await stats(srv.port);
      assert.equal(s.websockets, 0);
    } finally {
      for (const ws of open) ws.terminate();
      const e = await srv.stop();
      clean(srv);
      assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-4000));
    }
  });
});
