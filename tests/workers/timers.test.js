// App timers at the edge: the chat example's scheduled messages ("at") are
// timers of the room (wse_timer_set), kept in the Durable Object's SQLite
// storage (table wsedge_timers) and run by its alarm. They survive eviction
// (evictDurableObject: a new instance, sockets hibernated), arrive once, in
// due order, and a hibernated room wakes by itself to deliver them.
import { SELF, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import { BASE, connect, json, room, stub, joinAll } from './helpers.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function push(r, body) {
  const res = await SELF.fetch(`${BASE}/chat/${r}/messages`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: await json(res) };
}

/** The object's stored timers: [{ rec bytes }...] and its alarm. */
const stored = (r) => runInDurableObject(stub(r), async (obj, state) => {
  let rows = [];
  try { rows = state.storage.sql.exec('SELECT rec FROM wsedge_timers').toArray(); } catch { /* no table yet */ }
  return { n: rows.length, alarm: await state.storage.getAlarm() };
});

async function expectServerMessage(client, text) {
  const ev = JSON.parse(await client.next());
  expect(ev).toEqual({ type: 'message', id: 'server', name: 'server', text, ts: ev.ts });
  return ev;
}

describe('timers', () => {
  it('a scheduled message reaches every member once, when due; the row and the alarm go with it', async () => {
    const r = room('tm');
    const [a, b] = await joinAll(r, ['a', 'b']);
    const at = Date.now() + 300;
    const res = await push(r, { text: 'later', at });
    expect(res).toEqual({ status: 200, body: { scheduled: true, due_at: at, seq_due_at: at } });
    const s = await stored(r);
    expect(s.n).toBe(1);
    expect(s.alarm).toBe(at);
    expect(a.pending() + b.pending()).toBe(0);
    for (const m of [a, b]) {
      const ev = await expectServerMessage(m, 'later');
      expect(ev.ts).toBeGreaterThanOrEqual(at);
    }
    await sleep(300);
    expect(a.pending() + b.pending()).toBe(0); // once
    expect((await stored(r)).n).toBe(0);
  });

  it('survives eviction: the evicted room wakes by its alarm and delivers, once, in due order', async () => {
    const r = room('tm-evict');
    const [a, b, c] = await joinAll(r, ['a', 'b', 'c']);
    const t0 = Date.now();
    // out of order; due order is y, x, z
    for (const [text, dt] of [['x', 500], ['y', 300], ['z', 700]]) {
      expect((await push(r, { text, at: t0 + dt })).status).toBe(200);
    }
    const mark = await runInDurableObject(stub(r), (obj) => (obj.mark = Math.random()));
    await evictDurableObject(stub(r));
    for (const m of [a, b, c]) {
      for (const text of ['y', 'x', 'z']) await expectServerMessage(m, text);
    }
    // a new instance delivered them (the evicted one held them in memory only)
    expect(await runInDurableObject(stub(r), (obj) => obj.mark)).not.toBe(mark);
    await sleep(300);
    for (const m of [a, b, c]) expect(m.pending()).toBe(0);
    expect((await stored(r)).n).toBe(0);
    // the woken room is a room: members still talk
    a.send('still here');
    for (const m of [a, b, c]) expect(JSON.parse(await m.next()).text).toBe('still here');
  });

  it('scheduled for a room that is empty and evicted: whoever has joined when it is due gets it', async () => {
    const r = room('tm-empty');
    const at = Date.now() + 600;
    expect((await push(r, { text: 'hello', at })).status).toBe(200);
    await evictDurableObject(stub(r));
    expect((await stored(r)).n).toBe(1); // in storage, not in an instance
    await evictDurableObject(stub(r));
    const m = await connect(`/chat/${r}?name=late`);
    expect(JSON.parse(await m.next()).type).toBe('join');
    await evictDurableObject(stub(r)); // hibernated with its one member
    await expectServerMessage(m, 'hello');
    await sleep(200);
    expect(m.pending()).toBe(0);
  });

  it('many timers and evictions between them: every message exactly once, in order', async () => {
    const r = room('tm-many');
    const [a] = await joinAll(r, ['a']);
    const t0 = Date.now() + 400;
    const texts = [];
    for (let i = 0; i < 12; i++) {
      texts.push(`m${i}`);
      expect((await push(r, { text: `m${i}`, at: t0 + 40 * i })).status).toBe(200);
      if (i % 4 === 3) await evictDurableObject(stub(r));
    }
    for (const t of texts) await expectServerMessage(a, t);
    await sleep(200);
    expect(a.pending()).toBe(0);
  });

  it('a stored record the app cannot load is dropped; the others still run', async () => {
    const r = room('tm-bad');
    const [a] = await joinAll(r, ['a']);
    const at = Date.now() + 400;
    expect((await push(r, { text: 'good', at })).status).toBe(200);
    await runInDurableObject(stub(r), (obj, state) => {
      state.storage.sql.exec('INSERT INTO wsedge_timers (id, rec) VALUES (?, ?)',
        new Uint8Array([9, 9]).buffer, new Uint8Array([7, 1, 2, 3]).buffer);
    });
    await evictDurableObject(stub(r));
    await expectServerMessage(a, 'good');
    expect((await stored(r)).n).toBe(0);
  });

  it('bad "at" values: 400 with a JSON error, nothing stored', async () => {
    const r = room('tm-400');
    const now = Date.now();
    const cases = [
      [{ text: 'x', at: now + 8 * 86400e3 }, 'at is more than 7 days ahead'],
      [{ text: 'x', at: 0 }, 'invalid at'],
      [{ text: 'x', at: 2.5 }, 'invalid message'],
      [{ text: 'x', at: String(now) }, 'invalid message'],
      [{ text: 'x', to: 'AAAAAAAAAAAAAAAAAAAAAA', at: now + 1000 }, 'at cannot be used with to'],
    ];
    for (const [body, error] of cases) expect(await push(r, body)).toEqual({ status: 400, body: { error } });
    expect((await stored(r)).n).toBe(0);
  });
});
