// App timers natively (wse_timer_set behind libuv timers, --threads 2):
// the chat example's scheduled messages ("at") reach every member of the
// room once, in due order, from whichever thread the timer fires on; bad
// "at" values get 400 JSON.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, sleep, startServer, until } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

function join(room, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.wsUrl}/chat/${room}?name=${name}`, { perMessageDeflate: false });
    ws.events = [];
    ws.on('message', (d) => ws.events.push(JSON.parse(d)));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function push(room, body) {
  const r = await fetch(`${srv.url}/chat/${room}/messages`, { method: 'POST', body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

const messages = (ws) => ws.events.filter((e) => e.type === 'message').map((e) => e.text);

test('scheduled messages arrive once, when due, in due order, on both threads', async () => {
  const room = 'sched';
  const members = [];
  for (let i = 0; i < 6; i++) members.push(await join(room, `m${i}`));
  await until(() => members.every((m) => m.events.some((e) => e.type === 'join' && e.count === 6)), 5000 * SLOW, 'joins');
  const t0 = Date.now();
  // pushed out of order; due order is third, first, second
  const r1 = await push(room, { text: 'first', at: t0 + 600 });
  const r2 = await push(room, { text: 'second', at: t0 + 900 });
  const r3 = await push(room, { text: 'third', at: t0 + 300 });
  for (const [r, at] of [[r1, t0 + 600], [r2, t0 + 900], [r3, t0 + 300]]) {
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { scheduled: true, due_at: at, seq_due_at: at });
  }
  assert.deepEqual(members.map(messages), members.map(() => []), 'nothing before it is due');
  await until(() => members.every((m) => messages(m).length === 3), 10000 * SLOW, 'scheduled messages');
  for (const m of members) {
    assert.deepEqual(messages(m), ['third', 'first', 'second']);
    const ev = m.events.filter((e) => e.type === 'message');
    assert.ok(ev.every((e) => e.id === 'server' && e.name === 'server'));
    assert.ok(ev[0].ts >= t0 + 300 && ev[1].ts >= t0 + 600 && ev[2].ts >= t0 + 900, 'never early');
  }
  await sleep(400); // nothing more comes (each runs once)
  assert.ok(members.every((m) => messages(m).length === 3));
  for (const m of members) m.close();
});

test('a message scheduled for an empty room reaches whoever is there when it is due', async () => {
  const room = 'later';
  const t0 = Date.now();
  assert.equal((await push(room, { text: 'hello', at: t0 + 500 })).status, 200);
  const m = await join(room, 'late');
  await until(() => messages(m).length === 1, 10000 * SLOW, 'the scheduled message');
  assert.deepEqual(messages(m), ['hello']);
  // one in the past is due at once
  const r = await push(room, { text: 'past', at: 1 });
  assert.equal(r.status, 200);
  assert.ok(r.body.due_at >= t0);
  await until(() => messages(m).length === 2, 10000 * SLOW, 'the past one');
  m.close();
});

test('bad "at" values: 400 with a JSON error, nothing scheduled', async () => {
  const now = Date.now();
  const cases = [
    [{ text: 'x', at: now + 8 * 86400e3 }, 'at is more than 7 days ahead'],
    [{ text: 'x', at: 0 }, 'invalid at'],
    [{ text: 'x', at: -1 }, 'invalid message'],
    [{ text: 'x', at: 1.5 }, 'invalid message'],
    [{ text: 'x', at: String(now + 1000) }, 'invalid message'],
    [{ text: 'x', to: 'AAAAAAAAAAAAAAAAAAAAAA', at: now + 1000 }, 'at cannot be used with to'],
  ];
  for (const [body, error] of cases) {
    const r = await push('bad', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.deepEqual(r.body, { error });
  }
});
