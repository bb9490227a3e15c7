// A cluster of `wsedge serve --redis` processes sharing rooms through a
// real redis-server (Debian's, on 127.0.0.1 and a free port, stopped by
// PID at the end): chat across nodes byte for byte, direct messages to a
// session on another node, HTTP push counts from any node, a node killed
// with SIGKILL stops counting within its TTL, Redis stopped and restarted
// mid-traffic, Redis down at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, runCli, sleep, startServer, until } from './server.mjs';

const REDIS = '/usr/bin/redis-server';
const TTL = 2; // --redis-ttl: a node silent this long stops counting
const live = new Set();
process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** redis-server on 127.0.0.1:port without persistence; resolves once ready. */
async function startRedis(port) {
  const p = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--protected-mode', 'yes', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(p);
  const exited = new Promise((r) => p.on('exit', () => { live.delete(p); r(); }));
  await until(() => new Promise((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.write('PING\r\n'); });
    s.once('data', (d) => { s.destroy(); r(d.toString().startsWith('+PONG')); });
    s.once('error', () => r(false));
  }), 10000, 'redis-server to answer PING');
  return { pid: p.pid, async stop() { p.kill('SIGTERM'); await exited; } };
}

let redisPort, redis;
const nodes = [];
before(async () => {
  assert.ok(existsSync(REDIS), 'redis-server is missing: make deps installs it');
  redisPort = await freePort();
  redis = await startRedis(redisPort);
});
after(async () => {
  for (const n of nodes) assert.deepEqual(await n.stop(), { code: 0, signal: null }, n.log().slice(-3000));
  if (redis) await redis.stop();
});

async function node(extra = []) {
  const n = await startServer(['--threads', '2', '--redis', `redis://127.0.0.1:${redisPort}`,
    '--redis-ttl', String(TTL), ...extra]);
  nodes.push(n);
  await until(async () => (await stats(n)).cluster?.connected, 5000 * SLOW, 'node connected to Redis');
  return n;
}

async function stats(n) { return (await fetch(`${n.url}/stats`)).json(); }
async function members(n, room) { return (await (await fetch(`${n.url}/chat/${room}/stats`)).json()).members; }

function join(n, room, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${n.wsUrl}/chat/${room}?name=${name}`, { perMessageDeflate: false });
    ws.raws = [];
    ws.on('message', (d) => ws.raws.push(d.toString()));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
const ev = (ws, i) => JSON.parse(ws.raws[i]);
const gone = (ws) => new Promise((r) => { if (ws.readyState === WebSocket.CLOSED) r(); else ws.once('close', r); });

/** Every node counts `want` members in `room`. */
async function counted(ns, room, want) {
  await until(async () => (await Promise.all(ns.map((n) => members(n, room)))).every((m) => m === want),
    5000 * SLOW, `${want} members of ${room} on every node`);
}

test('chat across three nodes: the same bytes, in the same order, numbered once', async () => {
  const [n1, n2, n3] = [await node(), await node(), await node()];
  const room = 'across';
  const a = await join(n1, room, 'ann');
  await counted([n1, n2, n3], room, 1);
  const b = await join(n2, room, 'bob');
  await counted([n1, n2, n3], room, 2);
  const c = await join(n3, room, 'cy');
  await counted([n1, n2, n3], room, 3);
  await until(() => a.raws.length === 3 && b.raws.length === 2 && c.raws.length === 1, 5000 * SLOW, 'joins');
  assert.deepEqual([ev(a, 1).count, ev(a, 2).count], [2, 3]); // counts include the other nodes
  assert.deepEqual([ev(a, 0).seq, ev(b, 0).seq, ev(c, 0).seq], [1, 2, 3]); // one numbering
  let k = 3;
  for (const [i, ws] of [a, b, c, b, a].entries()) {
    ws.send(`line ${i}`);
    k++;
    await until(() => a.raws.length === k && b.raws.length === k - 1 && c.raws.length === k - 2,
      5000 * SLOW, `message ${i} everywhere`);
  }
  assert.deepEqual(a.raws.slice(2), c.raws); // byte for byte
  assert.deepEqual(a.raws.slice(1), b.raws);
  assert.deepEqual(c.raws.map((r) => JSON.parse(r).seq), [3, 4, 5, 6, 7, 8]);
  // binary relays cross too (not to the sender)
  b.send(Buffer.from([1, 2, 3]));
  await until(() => a.raws.length === k + 1 && c.raws.length === k - 1, 5000 * SLOW, 'binary');
  // a member leaving on one node is a leave, with the cluster's count, everywhere
  c.close();
  await until(() => a.raws.length === k + 2 && b.raws.length === k, 5000 * SLOW, 'leave');
  assert.deepEqual([ev(a, k + 1).type, ev(a, k + 1).count], ['leave', 2]);
  assert.equal(a.raws[k + 1], b.raws[k - 1]);
  a.close();
  b.close();
  await Promise.all([gone(a), gone(b)]);
  await counted([n1, n2, n3], room, 0);
});

test('a direct message reaches a session on another node; HTTP push from any node counts every member', async () => {
  const [n1, n2, n3] = nodes.length >= 3 ? nodes.slice(0, 3) : [await node(), await node(), await node()];
  const room = 'push';
  const a = await join(n1, room, 'ann');
  await counted([n1, n2, n3], room, 1);
  const b = await join(n2, room, 'bob');
  const b2 = await join(n2, room, 'bea');
  await counted([n1, n2, n3], room, 3);
  await until(() => a.raws.length === 3 && b2.raws.length === 1, 5000 * SLOW, 'joins');
  const bid = ev(b, 0).id;
  a.send(JSON.stringify({ to: bid, text: 'psst' }));
  await until(() => b.raws.length === 3 && a.raws.length === 4, 5000 * SLOW, 'direct message');
  assert.equal(b.raws[2], a.raws[3]); // the addressee and the sender's copy
  assert.deepEqual([ev(b, 2).type, ev(b, 2).text], ['direct', 'psst']);
  await sleep(100);
  assert.equal(b2.raws.length, 1); // nobody else
  // push on the node with one member, and on one with none
  for (const [n, text] of [[n1, 'from n1'], [n3, 'from n3']]) {
    const r = await fetch(`${n.url}/chat/${room}/messages`, { method: 'POST', body: text });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { delivered: 3 });
  }
  await until(() => a.raws.length === 6 && b.raws.length === 5 && b2.raws.length === 3, 5000 * SLOW, 'pushes');
  assert.deepEqual(b2.raws.slice(1), a.raws.slice(4));
  const seqs = a.raws.slice(4).map((r) => JSON.parse(r).seq);
  assert.equal(seqs[1], seqs[0] + 1); // n3 numbered on from the cluster's history
  // a direct push to a session on another node
  const r = await fetch(`${n3.url}/chat/${room}/messages`, { method: 'POST', body: JSON.stringify({ to: bid, text: 'hey' }) });
  assert.deepEqual(await r.json(), { delivered: 1 });
  await until(() => b.raws.length === 6, 5000 * SLOW, 'direct push');
  assert.equal(ev(b, 5).text, 'hey');
  for (const ws of [a, b, b2]) ws.close();
  await Promise.all([a, b, b2].map(gone));
});

test('a node killed with SIGKILL stops counting within its TTL', async () => {
  const n1 = await node();
  const n2 = await node();
  const room = 'kill';
  const a = await join(n1, room, 'ann');
  const bs = [await join(n2, room, 'bob'), await join(n2, room, 'bea')];
  await counted([n1, n2], room, 3);
  process.kill(n2.pid, 'SIGKILL');
  const t0 = Date.now();
  await until(async () => (await members(n1, room)) === 1, (TTL * 1000 + 4000) * SLOW, 'the dead node\'s members to go');
  const waited = Date.now() - t0;
  assert.ok(waited <= (TTL * 1000 + 4000) * SLOW, `${waited} ms`);
  const r = await fetch(`${n1.url}/chat/${room}/messages`, { method: 'POST', body: 'still here?' });
  assert.deepEqual(await r.json(), { delivered: 1 });
  await Promise.all(bs.map(gone));
  a.close();
  await gone(a);
  nodes.splice(nodes.indexOf(n2), 1);
  assert.equal((await n2.exited).signal, 'SIGKILL');
});

test('Redis stopped mid-traffic: rooms go on locally, the outage is queued and counted, then all comes back', async () => {
  const n1 = await node();
  const n2 = await node();
  const room = 'outage';
  const a = await join(n1, room, 'ann');
  const a2 = await join(n1, room, 'amy');
  const b = await join(n2, room, 'bob');
  await counted([n1, n2], room, 3);
  await until(() => a.raws.length === 3 && b.raws.length === 1, 5000 * SLOW, 'joins');
  await redis.stop();
  await until(async () => !(await stats(n1)).cluster.connected, 5000 * SLOW, 'n1 to see Redis gone');
  // local members still chat with each other
  a.send('during the outage');
  await until(() => a2.raws.length === 3, 5000 * SLOW, 'local delivery without Redis');
  assert.equal(a2.raws[2], a.raws[3]);
  const st = (await stats(n1)).cluster;
  assert.ok(st.queued_bytes > 0, JSON.stringify(st)); // kept for the others
  redis = await startRedis(redisPort);
  await until(async () => (await stats(n1)).cluster.connected && (await stats(n2)).cluster.connected,
    15000 * SLOW, 'both nodes back on Redis');
  // what waited is sent: bob gets the message from the outage
  await until(() => b.raws.some((r) => r.includes('during the outage')), 5000 * SLOW, 'queued message delivered');
  await counted([n1, n2], room, 3); // presence written again
  b.send('after');
  await until(() => a.raws.some((r) => r.includes('"after"')) && a2.raws.some((r) => r.includes('"after"')),
    5000 * SLOW, 'traffic after the restart');
  for (const ws of [a, a2, b]) ws.close();
  await Promise.all([a, a2, b].map(gone));
  assert.equal((await stats(n1)).cluster.dropped, 0);
});

test('Redis down at start: exit 2 with a clear error, or --redis-optional starts and joins later', async () => {
  const port = await freePort();
  const r = await runCli(['serve', '--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${port}`]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port}.*--redis-optional`));
  for (const bad of ['http://x', 'redis://', 'redis://h:0', 'redis://h:99999', 'redis://h/x', 'redis://u:p@h']) {
    const b = await runCli(['serve', '--redis', bad]);
    assert.equal(b.code, 2, bad);
    assert.match(b.stderr, /invalid --redis/);
  }
  const n = await startServer(['--redis', `redis://127.0.0.1:${port}/3`, '--redis-optional', '--redis-ttl', String(TTL)]);
  nodes.push(n);
  assert.equal((await stats(n)).cluster.connected, false);
  const a = await join(n, 'solo', 'ann');
  await until(() => a.raws.length === 1, 5000 * SLOW, 'a room without Redis');
  const late = await startRedis(port);
  try {
    await until(async () => (await stats(n)).cluster.connected, 15000 * SLOW, 'connected once Redis is up');
  } finally {
    a.close();
    await gone(a);
    nodes.splice(nodes.indexOf(n), 1);
    assert.deepEqual(await n.stop(), { code: 0, signal: null }, n.log().slice(-3000));
    await late.stop();
  }
});
