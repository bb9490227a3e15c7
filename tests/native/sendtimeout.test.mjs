// A room member that never reads is cut off (--send-timeout, issue 15).
//
// The member is tests/native/stalled_member.py: a 1 KiB receive buffer set
// before connecting, the handshake read byte by byte, then no read at all
// (or a trickle), watching its own TCP state without reading. A connection
// whose output does not drain at all for --send-timeout is reset and its
// session ended with 1008; one whose queue passes --max-write-buffer-size
// (default 1 MiB) is closed with 1008 at once and, still not reading, reset
// at the timeout. The other members get every message, in order.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import WebSocket from 'ws';
import { PLAIN_BIN, ROOT, SLOW, sleep, startServer, until } from './server.mjs';

const SIZE = 64 * 1024;
const TIMEOUT_S = 2;
// the cut comes at the first 1 s tick after TIMEOUT_S without progress
const CUT_MS = (TIMEOUT_S + 1 + 5) * 1000 * SLOW; // + generous slack

const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const mib = (b) => `${(b / 1048576).toFixed(2)} MiB`;
const stats = async (srv) => (await fetch(`${srv.url}/stats`)).json();

/** stalled_member.py on `target`; `trickle` = [bytes, everyMs] reads a little. */
async function stalledMember(port, target, trickle = []) {
  const p = spawn('/usr/bin/python3', [path.join(ROOT, 'tests/native/stalled_member.py'), String(port), target,
    ...trickle.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const m = { lines: [], ended: null, endedAt: 0, done: null, stderr: '', code: null };
  p.stderr.on('data', (d) => { m.stderr += d; });
  p.stdin.on('error', () => {}); // it may have exited already
  createInterface({ input: p.stdout }).on('line', (l) => {
    const j = JSON.parse(l);
    m.lines.push(j);
    if (j.state) { m.ended = j; m.endedAt = Date.now(); }
    if (j.done) m.done = j;
  });
  const exited = new Promise((r) => p.on('exit', (code) => { m.code = code; r(); }));
  await until(() => m.lines.length || m.code !== null, 10000 * SLOW, 'the stalled member\'s handshake');
  assert.ok(m.lines[0]?.ready, `stalled member: ${JSON.stringify(m.lines)} ${m.stderr}`);
  assert.ok(m.lines[0].rcvbuf <= 4608, `SO_RCVBUF ${m.lines[0].rcvbuf}`);
  /** EOF on its stdin: it closes its socket and exits. */
  m.stop = async () => { p.stdin.end(); await exited; };
  return m;
}

/** An npm ws member that reads everything: binary messages must arrive in
 * order (the index in their first 4 bytes), whole. */
function join(srv, room, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.wsUrl}/chat/${room}?name=${name}`, { perMessageDeflate: false, maxPayload: 0 });
    Object.assign(ws, { got: 0, bad: [], texts: [], closed: null });
    ws.on('message', (d, bin) => {
      if (!bin) { ws.texts.push(JSON.parse(d)); return; }
      const b = Buffer.from(d);
      if (b.length !== SIZE || b.readUInt32BE(0) !== ws.got || b[SIZE - 1] !== (ws.got & 0xff))
        ws.bad.push(`${name}: message ${ws.got}: ${b.length} bytes, index ${b.length >= 4 ? b.readUInt32BE(0) : '?'}`);
      ws.got++;
    });
    ws.on('close', (code) => { ws.closed = code; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** `n` messages of 64 KiB from `sender`, never more than `window` ahead of
 * the slowest reader (the readers' queues stay far under any bound). */
function flood(sender, readers, n, window = 4) {
  return new Promise((resolve, reject) => {
    let sent = 0;
    const low = () => Math.min(...readers.map((r) => r.got));
    const onClose = () => { done(); reject(new Error(`a member closed during the flood: ${readers.map((r) => r.closed)}`)); };
    const pump = () => {
      while (sent < n && sent - low() < window) {
        const b = Buffer.alloc(SIZE, sent & 0xff);
        b.writeUInt32BE(sent, 0);
        sender.send(b);
        sent++;
      }
      if (low() >= n) { done(); resolve(); }
    };
    const done = () => { for (const r of readers) { r.off('message', pump); r.off('close', onClose); } sender.off('close', onClose); };
    for (const r of readers) { r.on('message', pump); r.on('close', onClose); }
    sender.on('close', onClose);
    pump();
  });
}

const joined = (ws, name) => ws.texts.some((e) => e.type === 'join' && e.name === name);
const left = (ws, name) => ws.texts.find((e) => e.type === 'leave' && e.name === name);

async function stop(srv) {
  assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log().slice(-3000));
}

test('a member that never reads, in a room flooded with 2,000 x 64 KiB: 1008 at the 1 MiB default bound, reset within the timeout; RSS +<4 MiB; the others get everything in order', async () => {
  // the uninstrumented binary: ASan's shadow memory and quarantine would be
  // what an RSS bound measures. --close-timeout 30: only the send timeout
  // can end the connection within CUT_MS.
  const srv = await startServer(['--threads', '2', '--send-timeout', String(TIMEOUT_S), '--close-timeout', '30'],
    { bin: PLAIN_BIN });
  let stalled;
  try {
    await until(() => /max write buffer 1048576, send timeout 2s,/.test(srv.log()), 5000 * SLOW, 'the settings line');
    const room = 'flood';
    stalled = await stalledMember(srv.port, `/chat/${room}?name=stalled`);
    const a = await join(srv, room, 'a');
    const b = await join(srv, room, 'b');
    const flooder = await join(srv, room, 'flooder');
    await until(() => joined(a, 'flooder') && joined(b, 'flooder'), 5000 * SLOW, 'joins');

    const rss0 = rss(srv.pid);
    let peak = rss0;
    const sampler = setInterval(() => { peak = Math.max(peak, rss(srv.pid)); }, 20);
    const t0 = Date.now();
    const N = 2000;
    try {
      await flood(flooder, [a, b], N);
      await until(() => stalled.ended, CUT_MS, 'the stalled member to be cut off');
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rss(srv.pid));

    // cut: reset (its kernel saw an RST, nothing for it to read first)
    assert.equal(stalled.ended.state, 'closed', JSON.stringify(stalled.ended));
    assert.ok(stalled.endedAt - t0 <= CUT_MS, `cut after ${stalled.endedAt - t0} ms`);
    for (const m of [a, b]) {
      assert.deepEqual(m.bad, []);
      assert.equal(m.got, N);
      assert.equal(m.closed, null);
    }
    // its session ended with 1008 at the bound: the others saw it leave
    await until(() => left(a, 'stalled') && left(b, 'stalled'), 5000 * SLOW, 'a leave for the stalled member');
    assert.equal(left(a, 'stalled').count, 3);
    const s = await stats(srv);
    assert.equal(s.slow_consumers, 1);
    assert.equal(s.send_timeouts, 1);
    assert.equal(s.websockets, 3);
    assert.match(srv.log(), /slow consumer on thread \d+ slot \d+: \d+ bytes queued, closing with 1008/);
    assert.match(srv.log(), /send timeout on thread \d+ slot \d+: \d+ bytes queued, \d+ in the kernel, nothing drained for 2s: closing \(1008, reset\)/);
    assert.match(srv.log(), /close sid=\S+ room=flood peer=\S+ code=1008 /);
    console.log(`stalled member cut after ${stalled.endedAt - t0} ms; server RSS ${mib(rss0)} before the flood, ` +
      `peak ${mib(peak)} (+${mib(peak - rss0)}); ${N} x 64 KiB to each of 2 readers`);
    assert.ok(peak - rss0 < 4 * 1048576, `server RSS grew by ${mib(peak - rss0)}`);

    // the room still works
    a.send('still here');
    await until(() => b.texts.some((e) => e.type === 'message' && e.text === 'still here'), 5000 * SLOW, 'a message after');
    for (const m of [a, b, flooder]) m.close();
  } finally {
    await stalled?.stop();
    await stop(srv);
  }
});

test('a member whose queue stays under the bound is still cut when nothing drains for --send-timeout', async () => {
  const srv = await startServer(['--threads', '2', '--send-timeout', String(TIMEOUT_S), '--close-timeout', '30',
    '--max-write-buffer-size', '64m']);
  let stalled;
  try {
    const room = 'under';
    stalled = await stalledMember(srv.port, `/chat/${room}?name=stalled`);
    const a = await join(srv, room, 'a');
    const flooder = await join(srv, room, 'flooder');
    await until(() => joined(a, 'flooder'), 5000 * SLOW, 'joins');
    const t0 = Date.now();
    await flood(flooder, [a], 200); // 12.5 MiB for the stalled member: under 64m
    await until(() => stalled.ended, CUT_MS, 'the stalled member to be cut off');
    assert.equal(stalled.ended.state, 'closed', JSON.stringify(stalled.ended));
    assert.ok(stalled.endedAt - t0 <= CUT_MS, `cut after ${stalled.endedAt - t0} ms`);
    await until(() => left(a, 'stalled'), 5000 * SLOW, 'a leave for the stalled member');
    assert.equal(left(a, 'stalled').count, 2);
    assert.deepEqual(a.bad, []);
    assert.equal(a.got, 200);
    const s = await stats(srv);
    assert.equal(s.slow_consumers, 0);
    assert.equal(s.send_timeouts, 1);
    assert.equal(s.websockets, 2);
    assert.match(srv.log(), /send timeout on thread \d+ slot \d+: [1-9]\d* bytes queued, \d+ in the kernel, nothing drained for 2s/);
    assert.match(srv.log(), /close sid=\S+ room=under peer=\S+ code=1008 /);
    a.close();
    flooder.close();
  } finally {
    await stalled?.stop();
    await stop(srv);
  }
});

test('a slow reader that keeps draining is not cut', async () => {
  const srv = await startServer(['--threads', '1', '--send-timeout', String(TIMEOUT_S), '--max-write-buffer-size', '64m']);
  let slow;
  try {
    const room = 'trickle';
    // ~40 KiB/s: the 2.5 MiB below take a minute to drain; one write stays
    // in flight the whole time, progress is the queues moving
    slow = await stalledMember(srv.port, `/chat/${room}?name=slow`, [4096, 100]);
    const a = await join(srv, room, 'a');
    const flooder = await join(srv, room, 'flooder');
    await until(() => joined(a, 'flooder'), 5000 * SLOW, 'joins');
    await flood(flooder, [a], 40);
    await sleep((TIMEOUT_S * 2 + 2) * 1000);
    assert.equal(slow.ended, null, `the slow reader was cut: ${JSON.stringify(slow.ended)}`);
    assert.equal((await stats(srv)).send_timeouts, 0);
    await slow.stop();
    assert.ok(slow.done.read > 32 * 1024, `the slow reader read ${slow.done.read} bytes`);
    a.close();
    flooder.close();
  } finally {
    await slow?.stop();
    await stop(srv);
  }
});

test('--send-timeout 0: a member that never reads is kept (under the bound)', async () => {
  const srv = await startServer(['--threads', '1', '--send-timeout', '0', '--max-write-buffer-size', '64m']);
  let stalled;
  try {
    await until(() => /send timeout 0s,/.test(srv.log()), 5000 * SLOW, 'the settings line');
    const room = 'off';
    stalled = await stalledMember(srv.port, `/chat/${room}?name=stalled`);
    const a = await join(srv, room, 'a');
    const flooder = await join(srv, room, 'flooder');
    await until(() => joined(a, 'flooder'), 5000 * SLOW, 'joins');
    await flood(flooder, [a], 50);
    await sleep((TIMEOUT_S * 2 + 2) * 1000);
    assert.equal(stalled.ended, null, JSON.stringify(stalled.ended));
    const s = await stats(srv);
    assert.equal(s.send_timeouts, 0);
    assert.equal(s.websockets, 3);
    assert.equal(left(a, 'stalled'), undefined);
    a.close();
    flooder.close();
  } finally {
    await stalled?.stop();
    await stop(srv);
  }
});

test('WSEDGE_SEND_TIMEOUT applies, --send-timeout wins; the default is 10 s', async () => {
  for (const [args, env, want] of [[[], {}, 10], [[], { WSEDGE_SEND_TIMEOUT: '7' }, 7],
    [['--send-timeout', '3'], { WSEDGE_SEND_TIMEOUT: '7' }, 3]]) {
    const srv = await startServer(args, { env });
    try {
      await until(() => new RegExp(`, send timeout ${want}s,`).test(srv.log()), 5000 * SLOW, `send timeout ${want}s`);
    } finally {
      await stop(srv);
    }
  }
});
