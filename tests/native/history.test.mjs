// Message history natively (--threads 2): every chat room event (join,
// message, leave) carries "seq" (1, 2, 3… per room, for the life of the
// process); a member that drops its TCP connection and comes back with
// ?since=N first gets what it missed, in order, then its own join; a gap
// event when the room's last 100 no longer reach back to N.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, httpRaw, sleep, startServer, until, upgradeHead } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });

function join(room, name, since) {
  return new Promise((resolve, reject) => {
    const q = since === undefined ? '' : `&since=${since}`;
    const ws = new WebSocket(`${srv.wsUrl}/chat/${room}?name=${name}${q}`, { perMessageDeflate: false });
    ws.raws = [];
    ws.events = [];
    ws.on('message', (d) => { ws.raws.push(d.toString()); ws.events.push(JSON.parse(d)); });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('every room event is numbered; a member back with ?since gets what it missed, then its join', async () => {
  const room = 'hist';
  const a = await join(room, 'ann');
  await until(() => a.events.length === 1, 5000 * SLOW, 'join');
  assert.equal(a.raws[0], `{"type":"join","id":"${a.events[0].id}","name":"ann","count":1,"seq":1}`);
  const b = await join(room, 'bob');
  await until(() => a.events.length === 2 && b.events.length === 1, 5000 * SLOW, 'second join');
  assert.equal(b.events[0].seq, 2);
  a.send('one');
  await until(() => b.events.length === 2, 5000 * SLOW, 'message');
  assert.equal(b.events[1].seq, 3);
  assert.equal(a.raws[2], b.raws[1]); // the same bytes to everyone
  // bob drops his TCP connection (no close handshake)
  b._socket.destroy();
  await until(() => a.events.length === 4, 5000 * SLOW, 'leave');
  assert.deepEqual([a.events[3].type, a.events[3].seq], ['leave', 4]);
  a.send('while away');
  const r = await fetch(`${srv.url}/chat/${room}/messages`, { method: 'POST', body: 'pushed' });
  assert.equal(r.status, 200);
  await until(() => a.events.length === 6, 5000 * SLOW, 'messages while away');
  const b2 = await join(room, 'bob', 3);
  await until(() => b2.events.length === 4, 5000 * SLOW, 'resume');
  assert.deepEqual(b2.events.map((e) => [e.type, e.seq]), [['leave', 4], ['message', 5], ['message', 6], ['join', 7]]);
  assert.deepEqual(b2.raws.slice(0, 3), a.raws.slice(3, 6)); // byte for byte what was live
  await sleep(100);
  assert.equal(b2.events.length, 4);
  a.close();
  b2.close();
});

test('past the last 100: a gap event, then the 100 kept, then the join', async () => {
  const room = 'hist-gap';
  const a = await join(room, 'ann');
  await until(() => a.events.length === 1, 5000 * SLOW, 'join');
  for (let i = 0; i < 120; i++) a.send(`m${i}`);
  await until(() => a.events.length === 121, 10000 * SLOW, 'messages');
  const c = await join(room, 'cy', 5);
  await until(() => c.events.length === 102, 10000 * SLOW, 'resume');
  assert.deepEqual(c.events[0], { type: 'gap', from: 6, to: 21 });
  assert.deepEqual(c.events.slice(1, 101).map((e) => e.seq), Array.from({ length: 100 }, (_, i) => 22 + i));
  assert.deepEqual([c.events[101].type, c.events[101].seq], ['join', 122]);
  for (const since of ['x', '-1', '01', '']) {
    const bad = await httpRaw(srv.port, upgradeHead(srv.port, `/chat/${room}?since=${since}`));
    assert.equal(bad.status, 400);
    assert.deepEqual(JSON.parse(bad.body), { error: 'invalid since' });
  }
  a.close();
  c.close();
});
