// Chat rooms across threads (--threads 2): members spread over both event
// loops must all see every event, and all in the same order (events are
// produced under the app lock and delivered in that order everywhere).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, startServer, until } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

function join(room, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.wsUrl}/chat/${room}?name=${encodeURIComponent(name)}`, { perMessageDeflate: false });
    ws.events = [];
    ws.bins = [];
    ws.on('message', (d, bin) => { if (bin) ws.bins.push(Buffer.from(d)); else ws.events.push(JSON.parse(d)); });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Threads the server put this room's members on, from its open log lines. */
function threadsOf(room) {
  const re = new RegExp(`open sid=\\S+ path=/chat/${room} peer=\\S+ thread=(\\d)`, 'g');
  return new Set([...srv.log().matchAll(re)].map((m) => m[1]));
}

test('8+ members on both threads: joins, messages and leaves in one order for everyone', async () => {
  const room = 'lobby';
  const clients = [];
  // at least 8 members, and members on both threads (SO_REUSEPORT hashes the
  // 4-tuple, so keep joining until both loops hold someone)
  while (clients.length < 8 || threadsOf(room).size < 2) {
    assert.ok(clients.length < 40, 'the kernel never spread connections over both threads');
    const c = await join(room, `user${clients.length}`);
    clients.push(c);
    // joins are sequential: wait until this one's own join event arrived
    await until(() => c.events.some((e) => e.type === 'join' && e.count === clients.length), 5000 * SLOW, 'own join');
  }
  const n = clients.length;
  assert.deepEqual([...threadsOf(room)].sort(), ['0', '1']);

  // joins: member i sees the joins of i..n-1 with counts i+1..n, in order
  await until(() => clients.every((c) => c.events.some((e) => e.type === 'join' && e.count === n)), 5000 * SLOW, 'last join everywhere');
  for (let i = 0; i < n; i++) {
    const joins = clients[i].events.filter((e) => e.type === 'join');
    assert.deepEqual(joins.map((e) => [e.name, e.count]),
      Array.from({ length: n - i }, (_, k) => [`user${i + k}`, i + k + 1]), `joins seen by user${i}`);
    assert.equal(joins[0].id.length, 22);
  }

  // every member sends M messages at once
  const M = 40;
  for (const c of clients) c.events.length = 0;
  for (let k = 0; k < M; k++) clients.forEach((c, i) => c.send(`u${i}-m${k}`));
  await until(() => clients.every((c) => c.events.length >= n * M), 20000 * SLOW, 'all messages');
  const seq0 = clients[0].events.map((e) => `${e.name}:${e.text}`);
  for (let i = 0; i < n; i++) {
    const ev = clients[i].events;
    assert.equal(ev.length, n * M, `user${i} got ${ev.length}`);
    assert.ok(ev.every((e) => e.type === 'message' && typeof e.ts === 'number' && e.id.length === 22));
    for (let s = 0; s < n; s++) {
      const from = ev.filter((e) => e.name === `user${s}`).map((e) => e.text);
      assert.deepEqual(from, Array.from({ length: M }, (_, k) => `u${s}-m${k}`), `order of user${s} at user${i}`);
    }
    assert.deepEqual(ev.map((e) => `${e.name}:${e.text}`), seq0, `user${i} saw a different global order`);
    // the room numbers its events: consecutive, the same numbers everywhere
    assert.deepEqual(ev.map((e) => e.seq), Array.from({ length: n * M }, (_, k) => ev[0].seq + k), `user${i} seq`);
    assert.deepEqual(ev.map((e) => e.seq), clients[0].events.map((e) => e.seq));
  }

  // binary goes unchanged to the others only
  for (const c of clients) c.bins.length = 0;
  clients[1].send(Buffer.from([0, 1, 2, 255]));
  await until(() => clients.every((c, i) => i === 1 || c.bins.length === 1), 5000 * SLOW, 'binary relay');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(clients[1].bins.length, 0);
  assert.deepEqual([...clients[0].bins[0]], [0, 1, 2, 255]);

  // a direct message crosses threads to the addressee and copies the sender only
  const ids = new Map();
  for (const c of clients) for (const e of c.events) if (e.name) ids.set(e.name, e.id);
  for (const c of clients) c.events.length = 0;
  const target = n - 1;
  const targetId = ids.get(`user${target}`);
  assert.ok(targetId);
  clients[0].send(JSON.stringify({ to: targetId, text: 'psst' }));
  await until(() => clients[target].events.length === 1 && clients[0].events.length === 1, 5000 * SLOW, 'direct');
  assert.equal(clients[target].events[0].type, 'direct');
  assert.equal(clients[target].events[0].text, 'psst');
  assert.equal(clients[target].events[0].name, 'user0');
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 1; i < target; i++) assert.equal(clients[i].events.length, 0, `user${i} saw the direct message`);

  // leave: the remaining members all see it with the new count
  for (const c of clients) c.events.length = 0;
  const gone = clients.pop();
  gone.close(1000);
  await until(() => clients.every((c) => c.events.length === 1), 5000 * SLOW, 'leave');
  for (const c of clients) assert.deepEqual({ ...c.events[0], id: undefined, seq: undefined }, { type: 'leave', id: undefined, name: `user${n - 1}`, count: n - 1, seq: undefined });
  // one number for the room's event, the same at every member
  assert.equal(new Set(clients.map((c) => c.events[0].seq)).size, 1);

  // an invalid app message gets an error to the sender only
  clients[2].send('{"text":""}');
  await until(() => clients[2].events.length === 2, 5000 * SLOW, 'error reply');
  assert.deepEqual(clients[2].events[1], { type: 'error', error: 'empty message' });

  for (const c of clients) c.close();
});

test('rooms are isolated', async () => {
  const a = await join('roomA', 'alice');
  const b = await join('roomB', 'bob');
  await until(() => a.events.length === 1 && b.events.length === 1, 5000 * SLOW, 'joins');
  a.send('only A');
  await until(() => a.events.length === 2, 5000 * SLOW, 'echo in A');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.events.length, 1);
  a.close();
  b.close();
});
