// Floods against build/wsedge: 10,000 pings in one burst (every one is
// answered — the server does not coalesce pongs), a ping flood from a client
// that never reads its pongs (closed with 1008 once the pongs queued for it
// pass --max-write-buffer-size; memory bounded), and a connection storm past
// --max-connections (503 JSON before any upgrade; existing clients unharmed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { RawWs, frame, mem, mib, parseResponse, rawExchange, startServer, stats, until, upgradeRequest, within } from './lib.mjs';

test('10,000 pings in one burst -> 10,000 pongs, in order, same payloads; RSS bounded', async () => {
  const srv = await startServer({ args: ['--threads', '1'] });
  try {
    const ws = await RawWs.connect(srv.port, '/ws');
    await ws.send(1, 'warm');
    await ws.wait((w) => w.frames.length === 1, 10000, 'warm-up echo');
    const m0 = mem(srv.pid);
    const N = 10000;
    const burst = [];
    for (let i = 0; i < N; i++) {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(i);
      burst.push(frame(9, p));
    }
    await ws.write(Buffer.concat(burst)); // one write: 100 KB of pings
    await ws.wait((w) => w.frames.length === 1 + N || w.ended, 30000, `${N} pongs`);
    const m1 = mem(srv.pid);
    const pongs = ws.frames.slice(1);
    assert.equal(pongs.length, N);
    pongs.forEach((f, i) => {
      assert.equal(f.opcode, 10);
      assert.equal(f.payload.readUInt32BE(0), i);
    });
    console.log(`ping burst: ${N} pings -> ${pongs.length} pongs; server RSS ${mib(m0.rss)} -> ${mib(m1.rss)}`);
    assert.ok(m1.rss - m0.rss < 4 * 1024, `RSS grew by ${mib(m1.rss - m0.rss)}`);
    // still a working connection
    await ws.send(1, 'after');
    await ws.wait((w) => w.frames.length === 2 + N, 10000, 'echo after the burst');
    assert.equal(ws.frames[N + 1].payload.toString(), 'after');
    ws.destroy();
  } finally {
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null });
  }
});

test('a ping flood from a client that never reads -> Close 1008 after a clean prefix of pongs; RSS bounded', async () => {
  const MAX_WB = 256 * 1024;
  const srv = await startServer({ args: ['--threads', '1', '--max-write-buffer-size', String(MAX_WB)] });
  try {
    const ws = await RawWs.connect(srv.port, '/ws');
    ws.sock.pause();
    const m0 = mem(srv.pid);
    let peak = m0.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, mem(srv.pid).rss)), 50);
    // 125-byte payloads: 131 bytes in, 127 bytes of pong out each; 24 MB total
    const N = 200000;
    const batch = [];
    for (let i = 0; i < 1000; i++) {
      const p = Buffer.alloc(125, 0x70);
      batch.push(frame(9, p));
    }
    const chunk = Buffer.concat(batch);
    let wrote = 0;
    for (; wrote < N; wrote += 1000) {
      try {
        await ws.write(chunk);
      } catch {
        break; // the server may drop TCP after close_timeout
      }
      if (ws.sock.destroyed) break;
    }
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(sampler);
    // now read what was queued for us
    const frames = ws.frames;
    ws.sock.resume();
    await ws.wait((w) => w.frames.some((f) => f.opcode === 8) || w.ended, 20000, 'the Close frame');
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, `no Close frame after ${frames.length} pongs (${ws.ended ? 'TCP closed' : ''})`);
    assert.equal(close.code, 1008);
    assert.equal(frames[frames.length - 1], close);
    const pongs = frames.slice(0, -1);
    assert.ok(pongs.every((f) => f.opcode === 10 && f.payload.length === 125), 'only whole pongs before the Close');
    assert.ok(pongs.length < wrote, 'the flood was cut off');
    console.log(`ping flood, never reading: ${wrote} pings sent, ${pongs.length} pongs then Close 1008; server RSS ${mib(m0.rss)}, peak ${mib(peak)}`);
    assert.ok(peak - m0.rss < 8 * 1024, `RSS grew by ${mib(peak - m0.rss)}`);
    ws.destroy();
  } finally {
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-2000));
  }
});

test('a connection storm past --max-connections 50 -> 503 JSON before upgrade; existing clients still echo', async () => {
  const LIMIT = 50;
  const srv = await startServer({ args: ['--threads', '2', '--max-connections', String(LIMIT)] });
  const clients = [];
  try {
    for (let i = 0; i < LIMIT; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`);
      await within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), `client ${i} open`);
      clients.push(ws);
    }
    // the storm: 200 upgrade attempts at once, each must get exactly a 503
    const storm = await Promise.all(Array.from({ length: 200 }, () => rawExchange(srv.port, upgradeRequest('/ws', srv.port), 15000)));
    for (const r of storm) {
      const res = parseResponse(r.buf);
      assert.ok(res, `no response (${r.ended}${r.err ? ' ' + r.err.code : ''}): ${r.buf.toString().slice(0, 80)}`);
      assert.equal(res.status, 503);
      assert.equal(res.reason, 'Service Unavailable');
      assert.match(res.headers['content-type'], /^application\/json/);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(res.headers['sec-websocket-accept'], undefined);
      assert.deepEqual(JSON.parse(res.body), { error: 'too many connections' });
      assert.equal(res.rest.length, 0, 'nothing after the 503');
      assert.equal(r.ended, 'end', 'the server closes a refused connection');
    }
    // existing clients are unaffected
    await Promise.all(clients.map((ws, i) => within(10000, new Promise((res) => {
      ws.once('message', (d) => res(d.toString()));
      ws.send(`still here ${i}`);
    }), `echo on client ${i}`).then((d) => assert.equal(d, `still here ${i}`))));
    // capacity comes back when clients leave
    for (const ws of clients.splice(0, 10)) ws.close(1000);
    await until(async () => {
      const r = await rawExchange(srv.port, 'GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const res = parseResponse(r.buf);
      return res && res.status === 200 && JSON.parse(res.body).connections <= LIMIT - 10 + 1;
    }, 15000, 'ten connections to be released');
    for (let i = 0; i < 10; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`);
      await within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), `new client ${i}`);
      clients.push(ws);
    }
    const s = await rawExchange(srv.port, 'GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseResponse(s.buf).status, 503, 'full again: /stats is refused as well');
  } finally {
    for (const ws of clients) ws.terminate();
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-2000));
  }
});
