// The cursors example over real sockets, on both targets (the native
// program and its Worker under wrangler dev): the page, the upgrade checks,
// the snapshot/join/move/leave records byte for byte, and bad input closed
// with the documented codes. Ids are random: each peer learns its own from
// the SELF record, and every expected message is then exact bytes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JOIN, LEAVE, MOVE, NONE, Peer, SELF, parse, pos, rec, recs, selfId } from './peer.mjs';
import { startAll, stopAll, targets } from './targets.mjs';

before(() => startAll(targets));
after(() => stopAll(targets), { timeout: 30000 });

const runTag = Date.now().toString(36);
let seq = 0;

function same(got, want, what) {
  assert.ok(Buffer.isBuffer(got), `${what}: not binary`);
  assert.deepEqual(parse(got), parse(want), what);
  assert.ok(got.equals(want), `${what}: ${got.toString('hex')} != ${want.toString('hex')}`);
}

for (const t of targets) {
  const T = `[${t.name}]`;
  describe(`${T} cursors`, () => {
    before(() => t.start(), { timeout: 120000 });
    const peers = [];
    after(() => { for (const p of peers.splice(0)) p.terminate(); });
    const board = () => `c-${runTag}-${++seq}`;
    /** Connect to a board; resolves [peer, its SELF id, its snapshot]. */
    async function join(b) {
      const p = await Peer.open(`${t.wsUrl}/cursors/${b}`);
      peers.push(p);
      const snap = await p.next();
      return [p, selfId(snap), snap];
    }

    test(`${T} the page, plain requests and refused upgrades`, async () => {
      const page = await fetch(`${t.baseUrl}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type'), /^text\/html/);
      assert.match(await page.text(), /<title>wsedge cursors<\/title>/);
      const plain = await fetch(`${t.baseUrl}/cursors/b1`);
      assert.equal(plain.status, 400);
      assert.deepEqual(await plain.json(), { error: 'This endpoint requires a WebSocket upgrade' });
      const none = await fetch(`${t.baseUrl}/cursors`);
      assert.equal(none.status, 404);
      assert.deepEqual(await none.json(), { error: 'not found' });
      for (const bad of ['a!b', 'caf%C3%A9', 'x'.repeat(65)]) {
        await assert.rejects(Peer.open(`${t.wsUrl}/cursors/${bad}`), (e) => {
          assert.equal(e.status, 400, `${T} ${bad}`);
          assert.deepEqual(JSON.parse(e.body), { error: 'invalid board' });
          return true;
        });
      }
    });

    test(`${T} snapshot, join, move, late joiner, leave: exact bytes`, async () => {
      const b = board();
      const [a, A, snapA] = await join(b);
      same(snapA, rec(SELF, A, NONE, NONE), 'first snapshot');
      const [bo, B, snapB] = await join(b);
      same(snapB, recs([SELF, B, NONE, NONE], [JOIN, A, NONE, NONE]), 'second snapshot');
      same(await a.next(), rec(JOIN, B, NONE, NONE), 'A sees B join');

      a.send(pos(0.25, 0.75));
      same(await bo.next(), rec(MOVE, A, 0.25, 0.75), 'B sees A move');
      // the same position again is not news; a move never returns to its sender
      a.send(pos(0.25, 0.75));
      bo.send(pos(1, -0));
      same(await a.next(), rec(MOVE, B, 1, 0), 'A sees B move (-0 sent as 0)');
      a.send(pos(0.5, 0.125));
      same(await bo.next(), rec(MOVE, A, 0.5, 0.125), 'B sees the next move, not the repeat');
      bo.send(pos(0.1, 0.9));
      same(await a.next(), rec(MOVE, B, 0.1, 0.9), 'A sees B again');

      // a late joiner gets everyone where they are, in board order
      const [c, C, snapC] = await join(b);
      same(snapC, recs([SELF, C, NONE, NONE], [JOIN, A, 0.5, 0.125], [JOIN, B, 0.1, 0.9]), 'late snapshot');
      same(await a.next(), rec(JOIN, C, NONE, NONE), 'A sees C join');
      same(await bo.next(), rec(JOIN, C, NONE, NONE), 'B sees C join');
      c.send(pos(0, 1));
      same(await a.next(), rec(MOVE, C, 0, 1), 'A sees C move');
      same(await bo.next(), rec(MOVE, C, 0, 1), 'B sees C move');

      // another board hears nothing of this one
      const [, O, snapO] = await join(board());
      same(snapO, rec(SELF, O, NONE, NONE), 'other board');

      // B leaves cleanly: the others get its last position
      const closeB = await bo.close(1000);
      assert.equal(closeB.code, 1000);
      same(await a.next(), rec(LEAVE, B, 0.1, 0.9), 'A sees B leave');
      same(await c.next(), rec(LEAVE, B, 0.1, 0.9), 'C sees B leave');
      // C's socket drops without a Close: the same leave
      c.terminate();
      same(await a.next(), rec(LEAVE, C, 0, 1), 'A sees C drop');
      assert.ok(await a.quiet(), 'nothing else for A');
      await a.close();
    });

    test(`${T} bad input closes the sender (1003/1007); the others see it leave`, async () => {
      const b = board();
      const [w] = await join(b);
      const cases = [
        ['text', (p) => p.sendText('{"x":0.5,"y":0.5}'), 1003, 'binary messages only'],
        // no runtime auto-response at the edge: the chat heartbeat is text too
        ['heartbeat', (p) => p.sendText('{"type":"ping"}'), 1003, 'binary messages only'],
        ['7 bytes', (p) => p.send(Buffer.alloc(7)), 1007, 'position must be 8 bytes'],
        ['9 bytes', (p) => p.send(Buffer.alloc(9)), 1007, 'position must be 8 bytes'],
        ['empty', (p) => p.send(Buffer.alloc(0)), 1007, 'position must be 8 bytes'],
        ['NaN', (p) => p.send(pos(NaN, 0.5)), 1007, 'position out of range'],
        ['Infinity', (p) => p.send(pos(0.5, Infinity)), 1007, 'position out of range'],
        ['above 1', (p) => p.send(pos(1.0000001, 0.5)), 1007, 'position out of range'],
        ['below 0', (p) => p.send(pos(0.5, -0.001)), 1007, 'position out of range'],
        // the route's 128-byte limit: the native host from the frame header,
        // the edge shim before the message enters wasm — 1009 on both
        ['200 bytes', (p) => p.send(Buffer.alloc(200)), 1009, 'message too big'],
      ];
      for (const [what, send, code, reason] of cases) {
        const [p, id] = await join(b);
        same(await w.next(), rec(JOIN, id, NONE, NONE), `${what}: join`);
        p.send(pos(0.5, 0.5));
        same(await w.next(), rec(MOVE, id, 0.5, 0.5), `${what}: move`);
        send(p);
        const info = await p.closedWithin();
        assert.equal(info.code, code, `${T} ${what}: close code`);
        if (reason !== null) assert.equal(info.reason, reason, `${T} ${what}: close reason`);
        same(await w.next(), rec(LEAVE, id, 0.5, 0.5), `${what}: leave keeps the last good position`);
      }
      assert.ok(await w.quiet(), 'no stray messages');
      await w.close();
    });

    test(`${T} twenty members: one snapshot of twenty records`, async () => {
      const b = board();
      // a member that never moves sees every other one arrive and move, so
      // each move is known to be applied before the next member joins
      const [w, W] = await join(b);
      const members = [{ p: w, id: W, x: NONE, y: NONE }];
      for (let i = 0; i < 18; i++) {
        const [p, id] = await join(b);
        for (const m of members) same(await m.p.next(), rec(JOIN, id, NONE, NONE), `join ${i}`);
        const x = i / 32, y = 1 - i / 32;
        p.send(pos(x, y));
        for (const m of members) same(await m.p.next(), rec(MOVE, id, x, y), `move ${i}`);
        members.push({ p, id, x, y });
      }
      const [last, L, snap] = await join(b);
      assert.equal(snap.length, 20 * 31);
      same(snap, recs([SELF, L, NONE, NONE], ...members.map((m) => [JOIN, m.id, m.x, m.y])), 'snapshot');
      for (const m of members) same(await m.p.next(), rec(JOIN, L, NONE, NONE), 'last join');
      await last.close();
      for (const m of members) same(await m.p.next(), rec(LEAVE, L, NONE, NONE), 'last leave');
      for (const m of members) m.p.terminate();
    });
  });
}
