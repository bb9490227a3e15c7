// Message history at the edge: every chat room event (join, message, leave)
// carries "seq" (1, 2, 3… per room), kept in the Durable Object's SQLite
// storage (table wsedge_events, the last 100 events), so numbers go on and
// a client back with ?since=N gets what it missed across evictions.
import { SELF, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import { BASE, connect, json, room, stub, upgrade } from './helpers.js';

async function member(r, name, since) {
  const c = await connect(`/chat/${r}?name=${name}${since === undefined ? '' : `&since=${since}`}`);
  c.raw = true; // events as sent, "seq" included
  return c;
}
const ev = async (c) => JSON.parse(await c.next());
// rows are written behind (historyFlushMs): what storage holds once the
// room's queued rows are stored
const stored = (state) => {
  try { return state.storage.sql.exec('SELECT count(*) AS n, max(seq) AS top FROM wsedge_events').toArray()[0]; } catch { return { n: 0, top: null }; }
};
const rows = (r) => runInDurableObject(stub(r), (obj, state) => {
  obj.sessions.flushHistory();
  return stored(state);
});
// rows as they are, nothing forced; and the reservation a queued row stands on
const rowsNow = (r) => runInDurableObject(stub(r), (obj, state) => ({
  ...stored(state), reserved: state.storage.kv.get('wsedge:seq-reserved') ?? 0,
  queued: obj.sessions._host ? obj.sessions._host.pending.length : 0,
}));
// a long write window for this room's context (the default is 10 ms)
const longWindow = (r) => runInDurableObject(stub(r), (obj) => { obj.sessions.host.flushMs = 60000; });
// ann joins room `name` (event 1), the room's windows made long, the join's
// own (default) window left to close; then n messages from ann, each back
async function annWithMessages(name, n) {
  const r = room(name);
  const a = await member(r, 'ann');
  await a.next();
  await longWindow(r);
  await new Promise((res) => setTimeout(res, 50));
  for (let i = 0; i < n; i++) a.send(`m${i}`);
  for (let i = 0; i < n; i++) await a.next();
  return { r, a };
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
async function push(r, text) {
  const res = await SELF.fetch(`${BASE}/chat/${r}/messages`, { method: 'POST', body: text });
  await res.arrayBuffer(); // a body left unread keeps the request open (and eviction waiting)
  return res;
}

describe('history', () => {
  it('numbers every room event, byte for byte, and resumes a member with ?since across an eviction', async () => {
    const r = room('hist');
    const a = await member(r, 'ann');
    const j1 = await a.next();
    const aid = JSON.parse(j1).id;
    expect(j1).toBe(`{"type":"join","id":"${aid}","name":"ann","count":1,"seq":1}`);
    const b = await member(r, 'bob');
    const j2 = await ev(b);
    expect(j2).toMatchObject({ type: 'join', name: 'bob', count: 2, seq: 2 });
    expect(await ev(a)).toEqual(j2);
    a.send('one');
    const m3 = await a.next();
    expect(m3).toBe(`{"type":"message","id":"${aid}","name":"ann","text":"one","ts":${JSON.parse(m3).ts},"seq":3}`);
    expect(await b.next()).toBe(m3);
    // a direct message has no number and takes none
    a.send(JSON.stringify({ to: j2.id, text: 'psst' }));
    expect(await ev(b)).toMatchObject({ type: 'direct', text: 'psst' });
    expect((await ev(a)).seq).toBeUndefined();
    expect((await push(r, "pushed")).status).toBe(200);
    expect(await ev(a)).toMatchObject({ type: 'message', id: 'server', text: 'pushed', seq: 4 });
    expect((await ev(b)).seq).toBe(4);
    b.ws.close(1000);
    await b.closeEvent();
    expect(await ev(a)).toMatchObject({ type: 'leave', name: 'bob', count: 1, seq: 5 });
    // evicted: the numbers and the history come back from storage
    await evictDurableObject(stub(r));
    expect(await rows(r)).toEqual({ n: 5, top: 5 });
    a.send('after');
    expect(await ev(a)).toMatchObject({ type: 'message', text: 'after', seq: 6 });
    const b2 = await member(r, 'bob', 2);
    // what bob missed after 2, in order, then his own join
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await ev(b2));
    expect(got.map((e) => [e.type, e.seq])).toEqual([['message', 3], ['message', 4], ['leave', 5], ['message', 6], ['join', 7]]);
    expect(JSON.stringify(got[0])).toBe(m3); // the same bytes as live
    expect(await ev(a)).toMatchObject({ type: 'join', name: 'bob', count: 2, seq: 7 });
    await new Promise((res) => setTimeout(res, 100));
    expect(b2.pending()).toBe(0);
  });

  it('past the last 100 events: a gap, then the 100 kept, then the join', async () => {
    const r = room('hist-gap');
    const a = await member(r, 'ann');
    await a.next(); // join 1
    for (let i = 0; i < 130; i++) {
      a.send(`m${i}`);
      await a.next();
      if (i === 64) await evictDurableObject(stub(r));
    }
    expect(await rows(r)).toEqual({ n: 100, top: 131 }); // the storage keeps 100
    const c = await member(r, 'cy', 10);
    expect(await ev(c)).toEqual({ type: 'gap', from: 11, to: 31 });
    for (let s = 32; s <= 131; s++) expect((await ev(c)).seq).toBe(s);
    expect(await ev(c)).toMatchObject({ type: 'join', seq: 132 });
    // since at the head: only the join; since=0 on a fresh room: its join
    const d = await member(r, 'di', 132);
    expect(await ev(d)).toMatchObject({ type: 'join', name: 'di', seq: 133 });
    const f = await member(room('hist-fresh'), 'fr', 0);
    expect(await ev(f)).toMatchObject({ type: 'join', seq: 1 });
  });

  it('rows are written behind, one commit per window; an instance reset inside the window has its successor store them', async () => {
    const r = room('hist-behind');
    const a = await member(r, 'ann');
    expect(await ev(a)).toMatchObject({ type: 'join', seq: 1 });
    await longWindow(r);
    await sleep(50); // the join's row is stored by the default window's timer
    // the join stored a reservation 1,000 ahead with its event (the only
    // write an event makes); the window stays open (now long) while busy
    expect(await rowsNow(r)).toEqual({ n: 1, top: 1, reserved: 1 + 1000, queued: 0 });
    for (let i = 0; i < 5; i++) {
      a.send(`m${i}`);
      expect(await ev(a)).toMatchObject({ type: 'message', text: `m${i}`, seq: 2 + i });
    }
    // the messages only queue their rows: the reservation covers their numbers
    expect(await rowsNow(r)).toEqual({ n: 1, top: 1, reserved: 1001, queued: 5 });
    // reset (as by a code update: its sockets drop): no hibernation while
    // the window's timer is pending, but a reset does not wait for it
    await runInDurableObject(stub(r), (obj, state) => state.abort('reset')).catch(() => {});
    expect((await a.closeEvent()).code).toBe(1006);
    // the new instance stored what the reset one had queued; the
    // reservation came down to 16 above the last number, and stands
    expect(await rowsNow(r)).toEqual({ n: 6, top: 6, reserved: 6 + 16, queued: 0 });
    const b = await member(r, 'bob', 1);
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await ev(b));
    expect(got.map((e) => [e.type, e.seq])).toEqual([['message', 2], ['message', 3], ['message', 4], ['message', 5], ['message', 6], ['join', 7]]); // no jump
  });

  it('with the default window the rows reach storage by themselves, and the reservation comes down to 16 above them', async () => {
    const r = room('hist-timer');
    const a = await member(r, 'ann');
    await a.next();
    for (let i = 0; i < 20; i++) a.send(`m${i}`);
    for (let i = 0; i < 20; i++) await a.next();
    let now;
    for (let t = 0; t < 100; t++) { // bounded: 100 x 20 ms
      now = await rowsNow(r);
      if (now.n === 21 && !now.queued && now.reserved === 37) break;
      await sleep(20);
    }
    expect(now).toEqual({ n: 21, top: 21, reserved: 21 + 16, queued: 0 });
  });

  it('more than 100 events inside one window: the last 100 are stored, in their slots', async () => {
    const { r, a } = await annWithMessages('hist-wrap', 150);
    expect((await rowsNow(r)).queued).toBeGreaterThan(100);
    expect(await rows(r)).toEqual({ n: 100, top: 151 });
    const seqs = await runInDurableObject(stub(r), (obj, state) =>
      state.storage.sql.exec('SELECT seq, slot FROM wsedge_events ORDER BY seq').toArray());
    expect(seqs.map((x) => x.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 52 + i));
    expect(seqs.every((x) => x.slot === x.seq % 100)).toBe(true);
    await evictDurableObject(stub(r));
    const c = await member(r, 'cy', 140);
    for (let s = 141; s <= 151; s++) expect((await ev(c)).seq).toBe(s);
    expect(await ev(c)).toMatchObject({ type: 'join', seq: 152 });
  });

  it('an object that dies inside a window loses those events, never a number', async () => {
    const { r, a } = await annWithMessages('hist-lost', 4); // 1 stored, 2..5 queued
    expect(await rowsNow(r)).toEqual({ n: 1, top: 1, reserved: 1001, queued: 4 });
    // the instance dies before its window's commit: what it queued is gone
    // (as when the runtime restarts it) and so is its state (its successor
    // has nothing to keep); its reservation is stored
    await runInDurableObject(stub(r), (obj) => {
      const host = obj.sessions.host;
      clearTimeout(host.flushTimer);
      host.flushTimer = null;
      host.pending = [];
      host.reserved = 0;
    });
    await evictDurableObject(stub(r));
    a.send('after');
    const after = await ev(a);
    expect(after).toMatchObject({ type: 'message', text: 'after', seq: 1002 }); // above every number given
    const b = await member(r, 'bob', 1);
    expect(await ev(b)).toMatchObject({ seq: 1002, text: 'after' }); // 2..5 lost: the jump says so
    expect(await ev(b)).toMatchObject({ type: 'join', seq: 1003 });
    expect(await ev(a)).toMatchObject({ type: 'join', seq: 1003 });
    // the floor is kept for good (every context of the object applies it
    // to every room)
    b.ws.close(1000);
    await b.closeEvent();
    expect(await ev(a)).toMatchObject({ type: 'leave', seq: 1004 });
    a.ws.close(1000);
    await a.closeEvent();
    await rows(r); // the window ends: the context goes
    const c = await member(r, 'cy');
    expect(await ev(c)).toMatchObject({ type: 'join', seq: 1005 }); // a's leave told no one: unnumbered
    await rows(r); // c's window stored: the reservation (its context's own) down to 16 above 1005
    expect(await runInDurableObject(stub(r), (obj, state) => [state.storage.kv.get('wsedge:seq-floor'), state.storage.kv.get('wsedge:seq-reserved')]))
      .toEqual([1001, 1005 + 16]);
  });

  it('a window whose rows storage refuses: its numbers become the floor, never given again', async () => {
    const { r, a } = await annWithMessages('hist-refused', 3); // 1 stored, 2..4 queued, reservation 1001
    const refused = await runInDurableObject(stub(r), (obj, state) => {
      const host = obj.sessions.host;
      host.storeRows = () => { throw new Error('refused'); }; // this instance's storage fails
      const ok = obj.sessions.flushHistory();
      delete host.storeRows;
      return { ok, floor: state.storage.kv.get('wsedge:seq-floor'), reserved: state.storage.kv.get('wsedge:seq-reserved') ?? 0 };
    });
    expect(refused).toEqual({ ok: false, floor: 1001, reserved: 1001 });
    a.send('next'); // this context numbers on (5); its row stored again as usual
    expect(await ev(a)).toMatchObject({ text: 'next', seq: 5 });
    a.ws.close(1000);
    await a.closeEvent();
    await rows(r);
    const b = await member(r, 'bob'); // a new context: above the floor
    expect(await ev(b)).toMatchObject({ type: 'join', seq: 1002 });
  });

  it('a woken room numbers on without a write of its own: the next instance keeps the standing reservation', async () => {
    const r = room('hist-wake');
    const a = await member(r, 'ann');
    expect(await ev(a)).toMatchObject({ type: 'join', seq: 1 });
    const b = await member(r, 'bob');
    expect(await ev(b)).toMatchObject({ type: 'join', seq: 2 });
    expect(await ev(a)).toMatchObject({ type: 'join', seq: 2 });
    let now;
    for (let t = 0; t < 100; t++) { // bounded: 100 x 20 ms for the window to close
      now = await rowsNow(r);
      if (now.reserved === 18) break;
      await sleep(20);
    }
    expect(now).toEqual({ n: 2, top: 2, reserved: 2 + 16, queued: 0 });
    await evictDurableObject(stub(r));
    // the event that wakes the room, run here with the storage's writes counted
    const woke = await runInDurableObject(stub(r), (obj, state) => {
      const { kv, sql } = state.storage;
      const seen = [];
      const put = kv.put, del = kv.delete, exec = sql.exec;
      kv.put = function (k, v) { seen.push(`put ${k}`); return put.call(this, k, v); };
      kv.delete = function (k) { seen.push(`delete ${k}`); return del.call(this, k); };
      sql.exec = function (q, ...args) { if (!/^\s*SELECT/i.test(q)) seen.push(q.split(' ')[0]); return exec.call(this, q, ...args); };
      try {
        obj.webSocketMessage(state.getWebSockets()[0], 'hello');
        const event = [...seen];
        obj.sessions.flushHistory(); // the window's commit: what counting sees
        return { event, commit: seen.slice(event.length), floor: kv.get('wsedge:seq-floor') ?? null };
      } finally {
        kv.put = put;
        kv.delete = del;
        sql.exec = exec;
      }
    });
    expect(woke.event).toEqual([]); // no write: its output waited for no commit
    expect(woke.commit).toContain('INSERT'); // the counting sees writes (the row, the wake count)
    expect(woke.floor).toBe(null); // nothing skipped
    expect(await ev(a)).toMatchObject({ type: 'message', text: 'hello', seq: 3 });
    expect(await ev(b)).toMatchObject({ type: 'message', text: 'hello', seq: 3 });
    expect(await rows(r)).toEqual({ n: 3, top: 3 });
  });

  it('a bad since is refused with 400 JSON', async () => {
    for (const since of ['abc', '-1', '01', '', '1.5', '99999999999999999999']) {
      const res = await upgrade(`/chat/${room('hist-bad')}?since=${since}`);
      expect(res.status).toBe(400);
      expect(await json(res)).toEqual({ error: 'invalid since' });
    }
  });
});
