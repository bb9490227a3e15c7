// tests/rooms.test.mjs — app.c's rooms on both targets, byte for byte:
// build/@NAME@ serve (native) and the Worker under wrangler dev, each on a
// free 127.0.0.1 port, started and stopped by wsedge/testing.
// Run with `make test` (it builds both first); WSEDGE_TARGETS=native (or
// workers) runs one target.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { bothTargets } from 'wsedge/testing';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WAIT_MS = 8000; // bound on any single wait

/** A WebSocket client that queues what it receives: next() is the next
 * message as { binary, data: Buffer }, closed() the close code. */
class Client {
  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const c = new Client(ws);
      const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no open within ${WAIT_MS} ms: ${url}`)); }, WAIT_MS);
      ws.once('open', () => { clearTimeout(timer); resolve(c); });
      ws.once('error', (e) => { clearTimeout(timer); reject(e); });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => {
          const e = new Error(`upgrade refused: ${res.statusCode}`);
          e.status = res.statusCode;
          e.body = Buffer.concat(chunks).toString();
          reject(e);
        });
      });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.code = null;
    ws.on('message', (data, binary) => this.push({ binary, data: Buffer.from(data) }));
    this.closedP = new Promise((r) => ws.once('close', (code) => { this.code = code; r(code); this.push(null); }));
  }

  push(m) {
    if (this.waiters.length) this.waiters.shift()(m);
    else if (m) this.queue.push(m);
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.code !== null) return Promise.reject(new Error(`closed (${this.code}) with nothing received`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${WAIT_MS} ms`)), WAIT_MS);
      this.waiters.push((m) => {
        clearTimeout(timer);
        if (m) resolve(m);
        else reject(new Error(`closed (${this.code}) while waiting for a message`));
      });
    });
  }

  /** The next message is the text frame `expected`, byte for byte. */
  async expectText(expected) {
    const m = await this.next();
    assert.equal(m.binary, false, 'a text frame');
    assert.equal(m.data.toString('latin1'), Buffer.from(expected).toString('latin1'));
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code);
    return Promise.race([this.closedP, new Promise((_, j) => setTimeout(() => j(new Error('no close')), WAIT_MS))]);
  }
}

const run = Date.now().toString(36);
let seq = 0;
const freshRoom = () => `t-${run}-${++seq}`; // the targets keep rooms between tests

bothTargets({
  native: { bin: 'build/@NAME@', args: ['serve', '--listen', '127.0.0.1:{port}', '--static', 'public'], cwd: ROOT },
  workers: { cwd: ROOT },
}, (t) => {
  const T = `[${t.name}]`;
  const open = [];
  const client = async (q) => { const c = await Client.open(t.wsUrl + q); open.push(c); return c; };
  after(() => Promise.all(open.map((c) => c.close().catch(() => c.ws.terminate()))));

  test(`${T} GET / is public/index.html`, async () => {
    const res = await fetch(t.url('/'), { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /^text\/html/);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(readFileSync(path.join(ROOT, 'public/index.html'))));
  });

  test(`${T} join, broadcast, binary relay, info, leave`, async () => {
    const room = freshRoom();
    const alice = await client(`/room/${room}?user=alice`);
    await alice.expectText('{"type":"join","user":"alice","count":1}');
    const bob = await client(`/room/${room}?user=b%C3%B6b`);
    await alice.expectText('{"type":"join","user":"böb","count":2}');
    await bob.expectText('{"type":"join","user":"böb","count":2}');

    alice.ws.send('hello "world" \u2713\n');
    const msg = '{"type":"message","user":"alice","text":"hello \\"world\\" \u2713\\n"}';
    await alice.expectText(msg);
    await bob.expectText(msg);

    // binary: to the others only, unchanged
    bob.ws.send(Buffer.from([0, 1, 2, 255]));
    const bin = await alice.next();
    assert.equal(bin.binary, true);
    assert.deepEqual([...bin.data], [0, 1, 2, 255]);

    const res = await fetch(t.url(`/room/${room}/info`), { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /^application\/json/);
    assert.equal(await res.text(), `{"room":"${room}","members":2}`);

    assert.equal(await bob.close(1000), 1000);
    await alice.expectText('{"type":"leave","user":"böb","count":1}');
    // bob received nothing after the join (not his own binary frame)
    assert.equal(bob.queue.length, 0);
    await alice.close(1000);
    const empty = await fetch(t.url(`/room/${room}/info`), { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(await empty.text(), `{"room":"${room}","members":0}`);
  });

  test(`${T} anonymous member, ping/pong, a message too long`, async () => {
    const room = freshRoom();
    const anon = await client(`/room/${room}`);
    await anon.expectText('{"type":"join","user":"anonymous","count":1}');
    anon.ws.send('{"type":"ping"}');
    await anon.expectText('{"type":"pong"}');
    anon.ws.send('x'.repeat(4097));
    await anon.expectText('{"type":"error","error":"message too long"}');
    await anon.close(1000);
  });

  test(`${T} refused joins: 400 with the app's JSON`, async () => {
    for (const [q, error] of [['/room/bad!room', 'invalid room'], [`/room/${freshRoom()}?user=`, 'invalid user'],
      [`/room/${'r'.repeat(65)}`, 'invalid room']]) {
      const e = await Client.open(t.wsUrl + q).then(() => null, (x) => x);
      assert.ok(e && e.status, `${q}: refused (${e && e.message})`);
      assert.equal(e.status, 400, q);
      assert.equal(e.body, JSON.stringify({ error }), q);
    }
    const res = await fetch(t.url('/nowhere'), { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(res.status, 404);
  });
});
