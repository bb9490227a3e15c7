// Soak against build/wsedge (--threads 2): many members in many chat rooms
// exchanging sequence-numbered messages for a long time.
//   default (make test):      1,000 connections, 10 rooms, 60 s
//   WSE_SOAK=1 (make soak):  10,000 connections, 100 rooms, 10 minutes
// Every member checks, as messages arrive, that it gets each message of each
// sender of its room exactly once and in that sender's order, and nothing
// from other rooms; at the end every member must hold every message of its
// room. Server RSS is sampled; the mean of the first window (first minute;
// first 10 s in the 60 s variant) is compared with the last window and the
// drift must stay small. Clients do not offer permessage-deflate (this
// measures the framing, rooms and buffers, not zlib contexts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { hardFdLimit, mem, mib, softFdLimit, startServer, stats, until, within } from './lib.mjs';

const SOAK = process.env.WSE_SOAK === '1';
const CONNS = Number(process.env.WSE_SOAK_CONNS || (SOAK ? 10000 : 1000));
const ROOMS = Number(process.env.WSE_SOAK_ROOMS || (SOAK ? 100 : 10));
const DURATION_S = Number(process.env.WSE_SOAK_SECONDS || (SOAK ? 600 : 60));
const PERIOD_MS = SOAK ? 20000 : 10000; // each member sends one message per period
const WINDOW_S = DURATION_S >= 300 ? 60 : 10;
const SAMPLE_MS = 1000;

test(`soak: ${CONNS} connections in ${ROOMS} rooms for ${DURATION_S} s, every message exactly once and in order`, { timeout: (DURATION_S + 300) * 1000 }, async () => {
  const need = CONNS + 512;
  const soft = softFdLimit();
  assert.ok(soft >= need,
    `the test process may open only ${soft} fds but needs ${need}: raise it first (make soak runs \`ulimit -n $(ulimit -Hn)\`; hard limit here: ${hardFdLimit()})`);
  const hard = hardFdLimit();
  assert.ok(hard >= need, `the fd hard limit (${hard}) is below the ${need} the server needs; cannot run this soak here`);
  const srv = await startServer({
    fdLimit: Math.min(65536, hard),
    args: ['--threads', '2', '--log-level', 'warn'],
  });
  const members = [];
  const problems = [];
  const problem = (s) => { if (problems.length < 50) problems.push(s); };
  let timers = [];
  try {
    const idle = mem(srv.pid).rss;

    // ---- connect everyone (in batches) -----------------------------------
    const t0 = Date.now();
    for (let i = 0; i < CONNS; i += 250) {
      const batch = [];
      for (let k = i; k < Math.min(CONNS, i + 250); k++) {
        const room = `soak${k % ROOMS}`;
        const m = { k, room, name: `m${k}`, sent: 0, got: new Map(), total: 0, closed: null };
        m.ws = new WebSocket(`ws://127.0.0.1:${srv.port}/chat/${room}?name=m${k}`, { perMessageDeflate: false });
        m.ws.on('message', (d) => {
          const ev = JSON.parse(d);
          if (ev.type !== 'message') return;
          const from = Number(ev.name.slice(1));
          if (from % ROOMS !== k % ROOMS) return problem(`m${k} (room ${room}) got a message from m${from} of another room`);
          const seq = Number(ev.text);
          const want = (m.got.get(from) ?? 0) + 1;
          if (seq !== want) problem(`m${k} got m${from}#${seq}, expected #${want}`);
          m.got.set(from, seq);
          m.total++;
        });
        m.ws.on('close', (code) => { m.closed = code; });
        m.ws.on('error', (e) => problem(`m${k}: ${e.message}`));
        batch.push(within(30000, new Promise((res, rej) => { m.ws.once('open', res); m.ws.once('error', rej); }), `member ${k} open`));
        members.push(m);
      }
      await Promise.all(batch);
    }
    await until(async () => (await stats(srv.port)).members === CONNS, 30000, `${CONNS} members in the server's rooms`);
    const connected = mem(srv.pid).rss;
    console.log(`soak: ${CONNS} members connected in ${Date.now() - t0} ms; server RSS idle ${mib(idle)}, connected ${mib(connected)} ` +
      `(${((connected - idle) * 1024 / CONNS).toFixed(0)} B per member)`);

    // ---- traffic ------------------------------------------------------------
    const samples = [];
    const tStart = Date.now();
    const sampler = setInterval(() => samples.push({ t: (Date.now() - tStart) / 1000, rss: mem(srv.pid).rss }), SAMPLE_MS);
    for (const m of members) {
      const send = () => {
        if (m.ws.readyState !== WebSocket.OPEN) return;
        m.sent++;
        m.ws.send(String(m.sent));
      };
      // random phase, then periodic
      const first = setTimeout(() => { send(); timers.push(setInterval(send, PERIOD_MS)); }, Math.random() * PERIOD_MS);
      timers.push(first);
    }
    await new Promise((r) => setTimeout(r, DURATION_S * 1000));
    for (const t of timers) { clearTimeout(t); clearInterval(t); }
    timers = [];
    clearInterval(sampler);
    const sentTotal = members.reduce((a, m) => a + m.sent, 0);

    // ---- drain and verify ---------------------------------------------------
    const byRoom = new Map();
    for (const m of members) {
      const r = byRoom.get(m.room) ?? { sent: 0, senders: [] };
      r.sent += m.sent;
      r.senders.push(m);
      byRoom.set(m.room, r);
    }
    const complete = (m) => m.total === byRoom.get(m.room).sent;
    await until(() => members.every(complete), 120000,
      `every member to receive every message of its room (${members.filter((m) => !complete(m)).length} incomplete)`).catch((e) => problem(e.message));
    let delivered = 0;
    for (const m of members) {
      delivered += m.total;
      if (m.closed !== null) problem(`m${m.k} was closed with ${m.closed}`);
      for (const s of byRoom.get(m.room).senders) {
        if ((m.got.get(s.k) ?? 0) !== s.sent) problem(`m${m.k} has ${m.got.get(s.k) ?? 0} of m${s.k}'s ${s.sent} messages`);
      }
    }
    const st = await stats(srv.port);

    // ---- memory drift ---------------------------------------------------------
    const win = (a, b) => {
      const xs = samples.filter((s) => s.t >= a && s.t < b).map((s) => s.rss);
      return xs.reduce((x, y) => x + y, 0) / xs.length;
    };
    const first = win(0, WINDOW_S);
    const last = win(DURATION_S - WINDOW_S, DURATION_S + 1);
    const peak = Math.max(...samples.map((s) => s.rss));
    console.log(`soak: ${sentTotal} messages sent, ${delivered} deliveries (expected ${[...byRoom.values()].reduce((a, r) => a + r.sent * r.senders.length, 0)}); ` +
      `server stats messages_in ${st.messages_in}, messages_out ${st.messages_out}`);
    console.log(`soak: server RSS mean first ${WINDOW_S} s ${mib(first)}, last ${WINDOW_S} s ${mib(last)}, drift ${mib(last - first)}, peak ${mib(peak)}`);
    assert.deepEqual(problems, []);
    assert.ok(sentTotal >= CONNS * Math.floor(DURATION_S * 1000 / PERIOD_MS) * 0.9, `only ${sentTotal} messages sent`);
    // drift bound: 10 % of the first window or 4 MiB, whichever is larger
    assert.ok(last - first <= Math.max(4096, first * 0.1), `RSS drifted by ${mib(last - first)} (first ${mib(first)}, last ${mib(last)})`);
  } finally {
    for (const t of timers) { clearTimeout(t); clearInterval(t); }
    for (const m of members) m.ws.terminate();
    const e = await srv.stop(30000);
    assert.deepEqual(e, { code: 0, signal: null }, srv.stderr().slice(-3000));
  }
});
