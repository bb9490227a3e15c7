// Slow consumer against build/wsedge: a chat member that never reads while
// two others flood the room.
//
// What the server guarantees (bindings/native/conn.c, slow_consumer()): once
// a member's queued output (user space, in flight + corked) would pass
// --max-write-buffer-size, the server drops the corked frames it has not
// started writing, queues a Close 1008 "slow consumer" after the frame in
// flight, ends the session at once (the others see a "leave") and waits
// close_timeout (5 s) for the member. So a member that resumes reading
// within close_timeout reads a contiguous, in-order prefix of the room's
// messages (per sender), then Close 1008 — never a torn frame. One that
// never resumes is dropped after close_timeout (TCP FIN; the unsent tail,
// Close frame included, is lost, and the last frame it reads may be torn).
// The first test resumes at once, the second after close_timeout; each
// asserts exactly that. Server RSS is sampled during the flood and must stay
// far below what buffering the flood for the slow member would cost.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import { FrameReader, closePayload, frame, mem, mib, parseResponse, startServer, until, upgradeRequest, within } from './lib.mjs';

const MAX_WB = 1024 * 1024; // readers get generous slack on a loaded machine
const PER_SENDER = 10000; // x 2 senders x ~1.1 KB each = ~22 MB for the slow member
const WINDOW = 64; // a sender's messages in flight (keeps the readers well under MAX_WB)
const PAD = 'x'.repeat(1000);

function member(port, room, name) {
  // no permessage-deflate: the RSS bound measures buffering, not zlib contexts
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat/${room}?name=${name}`, { perMessageDeflate: false });
  const m = { ws, name, events: [], seen: new Map(), errors: [], closed: null, joined: false };
  ws.on('message', (d) => {
    const ev = JSON.parse(d.toString());
    m.events.push(ev.type);
    if (ev.type === 'message') {
      const [from, seq] = ev.text.split(':');
      const want = (m.seen.get(from) ?? 0) + 1;
      if (Number(seq) !== want) m.errors.push(`${name}: from ${from} got ${seq}, expected ${want}`);
      m.seen.set(from, Number(seq));
      if (from === name && m.onOwn) m.onOwn(Number(seq));
    } else if (ev.type === 'leave') {
      m.leaves = (m.leaves ?? []).concat(ev.name);
    }
  });
  ws.on('close', (code) => (m.closed = code));
  m.open = within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), `${name} open`);
  return m;
}

/** A member that upgrades by hand, reads its own join, then stops reading. */
function slowMember(port, room) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const st = { sock: s, head: Buffer.alloc(0), upgraded: false, chunks: [], ended: null };
    s.on('connect', () => s.write(upgradeRequest(`/chat/${room}?name=slow`, port)));
    s.on('data', (d) => {
      if (!st.upgraded) {
        st.head = Buffer.concat([st.head, d]);
        const end = st.head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const r = parseResponse(st.head.subarray(0, end + 4));
        if (r.status !== 101) return reject(new Error(`slow member upgrade -> ${r.status}`));
        st.upgraded = true;
        d = st.head.subarray(end + 4);
        // stop reading right away: node stops calling read() on the fd once
        // its small internal buffer is full
        s.pause();
        resolve(st);
        if (!d.length) return;
      }
      st.chunks.push(d);
    });
    s.on('end', () => (st.ended ??= 'end'));
    s.on('close', () => (st.ended ??= 'close'));
    s.on('error', (e) => (st.ended ??= e.code || 'error'));
  });
}

test('a member that never reads is closed with 1008; the others get everything in order; RSS bounded', async () => {
  const srv = await startServer({ args: ['--threads', '2', '--max-write-buffer-size', String(MAX_WB)] });
  try {
    const room = 'flood';
    const a = member(srv.port, room, 'a');
    const b = member(srv.port, room, 'b');
    const c = member(srv.port, room, 'c');
    await Promise.all([a.open, b.open, c.open]);
    const slow = await slowMember(srv.port, room);
    const joins = (m) => m.events.filter((e) => e === 'join').length;
    // a, b and c joined concurrently (in any order), then slow: whoever
    // joined first saw 4 joins, then 3, then 2
    await until(() => joins(a) + joins(b) + joins(c) === 9, 10000, 'every join event');
    assert.deepEqual([joins(a), joins(b), joins(c)].sort(), [2, 3, 4]);

    const rss0 = mem(srv.pid).rss;
    let peak = rss0;
    const sampler = setInterval(() => { peak = Math.max(peak, mem(srv.pid).rss); }, 50);

    // each sender keeps at most WINDOW of its own messages unacknowledged
    // (a message is acknowledged when it comes back to its sender)
    const flood = (m) => new Promise((resolve, reject) => {
      let sent = 0, acked = 0;
      const pump = () => {
        while (sent < PER_SENDER && sent - acked < WINDOW) {
          sent++;
          m.ws.send(`${m.name}:${sent}:${PAD}`);
        }
        if (acked === PER_SENDER) resolve();
      };
      m.onOwn = (seq) => { acked = seq; pump(); };
      m.ws.once('close', () => reject(new Error(`sender ${m.name} closed during the flood`)));
      pump();
    });
    await within(120000, Promise.all([flood(a), flood(b)]), 'the flood to be delivered back to its senders');
    // the slow member has left (the server ended its session)
    await until(() => (c.leaves ?? []).includes('slow'), 20000, 'a "leave" for the slow member');
    clearInterval(sampler);
    peak = Math.max(peak, mem(srv.pid).rss);
    const rss1 = mem(srv.pid).rss;

    // every reader got every message of both senders exactly once, in order
    await until(() => [a, b, c].every((m) => m.seen.get('a') === PER_SENDER && m.seen.get('b') === PER_SENDER), 30000, 'all readers to catch up')
      .catch((e) => {
        const st = [a, b, c].map((m) => ({ name: m.name, a: m.seen.get('a'), b: m.seen.get('b'), errors: m.errors.slice(0, 5), closed: m.closed }));
        throw new Error(`${e.message}: ${JSON.stringify(st)}`);
      });
    for (const m of [a, b, c]) {
      assert.deepEqual(m.errors, []);
      assert.equal(m.closed, null, `reader ${m.name} was closed (${m.closed})`);
    }

    // the slow member resumes reading now (well within close_timeout)
    const reader = new FrameReader();
    slow.sock.resume();
    await until(() => {
      const frames = reader.push(Buffer.concat(slow.chunks.splice(0)));
      (slow.frames ??= []).push(...frames);
      return slow.frames.some((f) => f.opcode === 8) || slow.ended;
    }, 20000, 'the slow member to read up to the Close frame');
    const frames = slow.frames;
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, `no Close frame; stream ended with ${slow.ended} after ${frames.length} frames`);
    assert.equal(close.code, 1008);
    assert.equal(close.reason, 'slow consumer');
    assert.equal(frames[frames.length - 1], close, 'nothing may follow the Close frame');
    // before it: whole frames only, a contiguous prefix per sender
    const seen = { a: 0, b: 0 };
    for (const f of frames.slice(0, -1)) {
      assert.equal(f.opcode, 1);
      assert.equal(f.fin, true);
      const ev = JSON.parse(f.payload.toString());
      if (ev.type !== 'message') continue;
      const [from, seq] = ev.text.split(':');
      assert.equal(Number(seq), seen[from] + 1, `slow member: ${from}:${seq} after ${seen[from]}`);
      seen[from]++;
    }
    const got = seen.a + seen.b;
    assert.ok(got < 2 * PER_SENDER, 'the slow member was not cut off');
    // it answers the Close; the server then closes TCP
    slow.sock.write(frame(8, closePayload(1008)));
    await until(() => slow.ended, 10000, 'TCP close after the close handshake');

    const bytesToSlow = 2 * PER_SENDER * 1080;
    console.log(`slow consumer: max_write_buffer_size ${MAX_WB} B; slow member read ${got} of ${2 * PER_SENDER} messages then Close 1008; ` +
      `server RSS ${mib(rss0)} before, peak ${mib(peak)}, ${mib(rss1)} after; flood addressed to it ~${mib(bytesToSlow / 1024)}`);
    // bounded: far below the ~22 MB the server would hold had it buffered the
    // flood for the slow member (one write buffer + allocator slack)
    assert.ok(peak - rss0 < 8 * 1024, `server RSS grew by ${mib(peak - rss0)} during the flood`);
  } finally {
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-2000));
  }
});

test('a slow member that resumes only after close_timeout: a clean prefix, no Close frame, then TCP FIN', async () => {
  // --close-timeout 1: the server gives up on the member one second after
  // queueing its Close 1008 and drops TCP. What the kernel already held is
  // still delivered; what was still queued in user space (the Close frame
  // included) is gone. The last frame can be torn (a write the kernel took
  // only in part) — the test allows that and nothing else.
  const srv = await startServer({ args: ['--threads', '2', '--max-write-buffer-size', '65536', '--close-timeout', '1'] });
  try {
    const a = member(srv.port, 'late', 'a');
    await a.open;
    const slow = await slowMember(srv.port, 'late');
    const N = 20000;
    const done = new Promise((resolve) => {
      let sent = 0, acked = 0;
      const pump = () => {
        while (sent < N && sent - acked < WINDOW) a.ws.send(`a:${++sent}:${PAD.slice(0, 500)}`);
        if (acked === N) resolve();
      };
      a.onOwn = (seq) => { acked = seq; pump(); };
      pump();
    });
    await within(120000, done, 'the flood');
    await until(() => (a.leaves ?? []).includes('slow'), 20000, 'a "leave" for the slow member');
    // well past close_timeout (1 s, checked by a 1 s tick)
    await new Promise((r) => setTimeout(r, 4000));
    slow.sock.resume();
    await until(() => slow.ended, 20000, 'the end of the slow member\'s stream');
    const reader = new FrameReader();
    const frames = reader.push(Buffer.concat(slow.chunks));
    assert.equal(slow.ended, 'end', 'a FIN, not a reset');
    assert.equal(frames.filter((f) => f.opcode === 8).length, 0, 'the Close frame was still queued when the server gave up');
    let seq = 0;
    for (const f of frames) {
      assert.equal(f.opcode, 1);
      const ev = JSON.parse(f.payload.toString());
      if (ev.type !== 'message') continue;
      assert.equal(Number(ev.text.split(':')[1]), ++seq);
    }
    assert.ok(seq > 0 && seq < N);
    assert.ok(reader.pending < 2048, `${reader.pending} bytes of a torn frame`);
    console.log(`slow member resuming after close_timeout: ${seq} whole messages, ${reader.pending} bytes of a torn frame, then FIN`);
    assert.deepEqual(a.errors, []);
    assert.equal(a.closed, null);
  } finally {
    const e = await srv.stop();
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-2000));
  }
});
