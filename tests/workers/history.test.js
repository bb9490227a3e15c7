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
const rows = (r) => runInDurableObject(stub(r), (obj, state) => {
  try { return state.storage.sql.exec('SELECT count(*) AS n, max(seq) AS top FROM wsedge_events').toArray()[0]; } catch { return { n: 0, top: null }; }
});
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

  it('a bad since is refused with 400 JSON', async () => {
    for (const since of ['abc', '-1', '01', '', '1.5', '99999999999999999999']) {
      const res = await upgrade(`/chat/${room('hist-bad')}?since=${since}`);
      expect(res.status).toBe(400);
      expect(await json(res)).toEqual({ error: 'invalid since' });
    }
  });
});
