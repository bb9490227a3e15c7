// Wakes of a hibernating room: closes that arrive while the object sleeps
// (the leave must reach the others), and the lifetime wake/restore counters
// that GET /chat/:room/stats reports across evictions (persisted in the
// object's storage, fed to the core's stats).
import { SELF, env, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { BASE, SID, connect, room, stub, joinAll, stats } from './helpers.js';

describe('closes while the room hibernates', () => {
  it('two members close back to back while hibernated: the others get both leaves, in order', async () => {
    const r = room('two-leave');
    const [a, b, c, d] = await joinAll(r, ['a', 'b', 'c', 'd']);
    await evictDurableObject(stub(r));
    c.ws.close(1000, 'c out');
    d.ws.close(1001, 'd out');
    expect(await c.closeEvent()).toEqual({ code: 1000, reason: 'c out' });
    expect(await d.closeEvent()).toEqual({ code: 1001, reason: 'd out' });
    // c's close wakes the object. d's Close may already have reached workerd
    // by then, which leaves d out of getWebSockets(): d is then restored when
    // its own event comes, so c's leave counts 3 or 2 members; d's always 2.
    for (const m of [a, b]) {
      const first = await m.json();
      expect(first).toEqual({ type: 'leave', id: c.id, name: 'c', count: first.count });
      expect([2, 3]).toContain(first.count);
      expect(await m.next()).toBe(`{"type":"leave","id":"${d.id}","name":"d","count":2}`);
    }
    // one wake however the closes fell: d restored in the first pass or
    // after it, either way 4 sessions rebuilt, counted as one wake
    expect(await stats(r)).toEqual({ room: r, members: 2, sessions: 2, restored: 4, wakes: 1 });
    a.send('after');
    for (const m of [a, b]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: a.id, text: 'after' });
    expect(a.pending()).toBe(0);
    expect(b.pending()).toBe(0);
  });

  it('a close while hibernated, then another eviction: the ended member does not come back', async () => {
    const r = room('leave-evict');
    const [a, b, c] = await joinAll(r, ['a', 'b', 'c']);
    await evictDurableObject(stub(r));
    c.ws.close(1000, 'bye');
    expect(await c.closeEvent()).toEqual({ code: 1000, reason: 'bye' });
    for (const m of [a, b]) expect(await m.next()).toBe(`{"type":"leave","id":"${c.id}","name":"c","count":2}`);
    await evictDurableObject(stub(r));
    b.send('hi');
    for (const m of [a, b]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: b.id, name: 'b', text: 'hi' });
    expect(await stats(r)).toMatchObject({ members: 2, sessions: 2 });
  });
});

describe('lifetime counters in GET /chat/:room/stats', () => {
  it('three evictions, three members: wakes 3, restored 9 (not reset by each new instance)', async () => {
    const r = room('wakes');
    const [a, b, c] = await joinAll(r, ['a', 'b', 'c']);
    expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 0, wakes: 0 });
    for (let i = 1; i <= 3; i++) {
      await evictDurableObject(stub(r));
      const from = [a, b, c][i - 1];
      from.send(`m${i}`);
      for (const m of [a, b, c]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: from.id, text: `m${i}` });
      expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 3 * i, wakes: i });
    }
    // a stats request is itself an event: after an eviction it wakes the room
    await evictDurableObject(stub(r));
    expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 12, wakes: 4 });
    for (const m of [a, b, c]) {
      expect(m.closed).toBeNull();
      expect(m.pending()).toBe(0);
    }
  });

  it("the wake's count is stored with the next commit, not in the event that woke the room", async () => {
    const r = room('wake-later');
    const [a, b] = await joinAll(r, ['a', 'b']);
    await evictDurableObject(stub(r));
    // the wake happens inside this call (its first event), with a long window
    const woke = await runInDurableObject(stub(r), (obj, state) => {
      obj.sessions.host.flushMs = 60000;
      obj.sessions.restore();
      return { stored: state.storage.kv.get('wsedge:counters') ?? null, deferred: !!obj.sessions.host.deferred };
    });
    expect(woke).toEqual({ stored: null, deferred: true }); // nothing written in that event
    expect(await stats(r)).toMatchObject({ wakes: 1, restored: 2 }); // counted all the same
    const later = await runInDurableObject(stub(r), (obj, state) => {
      obj.sessions.flushHistory();
      return { stored: state.storage.kv.get('wsedge:counters') ?? null, deferred: !!obj.sessions.host.deferred };
    });
    expect(later).toEqual({ stored: [1, 2], deferred: false });
    a.send(new Uint8Array([1, 2, 3]));
    expect(new Uint8Array(await b.next())).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('a room with no members wakes without counting (nothing restored)', async () => {
    const r = room('empty');
    const [a] = await joinAll(r, ['a']);
    a.ws.close(1000, '');
    expect(await a.closeEvent()).toEqual({ code: 1000, reason: '' });
    await evictDurableObject(stub(r));
    expect(await stats(r)).toEqual({ room: r, members: 0, sessions: 0, restored: 0, wakes: 0 });
  });
});
