// Hibernation: the room's object is evicted (evictDurableObject, sockets
// hibernated) and must rebuild its SessionMap from the sockets' attachments
// without losing a member, a name or a message.
import { SELF, env, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import { BASE, SID, connect, json, room, stub, joinAll, stats } from './helpers.js';

async function expectMessage(client, from, text) {
  const raw = await client.next();
  const ev = JSON.parse(raw);
  expect(raw).toBe(`{"type":"message","id":"${from.id}","name":"${from.name}","text":${JSON.stringify(text)},"ts":${ev.ts}}`);
}

// What an object instance holds in JS (not in wasm): a fresh instance after
// eviction starts with nothing, which is what makes the restore real.
const instanceMark = (r) => runInDurableObject(stub(r), (obj) => (obj.mark ??= Math.random()));

describe('hibernation', () => {
  it('three members survive an eviction: ids, names, no socket closed', async () => {
    const r = room('hib');
    const members = await joinAll(r, ['alice', 'bob', 'carol']);
    expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 0, wakes: 0 });
    const mark = await instanceMark(r);
    await evictDurableObject(stub(r));
    const [a, b, c] = members;
    a.send('after the eviction');
    for (const m of members) await expectMessage(m, a, 'after the eviction');
    expect(await instanceMark(r)).not.toBe(mark); // a new instance answered
    expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 3, wakes: 1 });
    // every restored session still speaks with its own id and name
    for (const s of [b, c]) {
      s.send(`from ${s.name}`);
      for (const m of members) await expectMessage(m, s, `from ${s.name}`);
    }
    // leave after a wake: the restored name and count are right
    c.ws.close(1000);
    expect(await c.closeEvent()).toEqual({ code: 1000, reason: '' });
    for (const m of [a, b]) expect(await m.next()).toBe(`{"type":"leave","id":"${c.id}","name":"carol","count":2}`);
    // a second eviction: one more wake, the two left are restored (the
    // counters are the object's lifetime totals, kept in its storage)
    await evictDurableObject(stub(r));
    b.send('again');
    for (const m of [a, b]) await expectMessage(m, b, 'again');
    expect(await stats(r)).toEqual({ room: r, members: 2, sessions: 2, restored: 5, wakes: 2 });
    for (const m of members) expect(m.pending()).toBe(0);
    expect(a.closed).toBeNull();
    expect(b.closed).toBeNull();
  });

  it('a new member joining a woken room sees the right count', async () => {
    const r = room('hib-join');
    const [a, b] = await joinAll(r, ['a', 'b']);
    await evictDurableObject(stub(r));
    const d = await connect(`/chat/${r}?name=d`);
    const ev = JSON.parse(await d.next());
    expect(ev).toEqual({ type: 'join', id: ev.id, name: 'd', count: 3 });
    for (const m of [a, b]) expect(JSON.parse(await m.next())).toEqual(ev);
  });

  it('eviction between every message of a 50-message exchange loses nothing', async () => {
    const r = room('hib50');
    const members = await joinAll(r, ['m0', 'm1', 'm2']);
    for (let i = 0; i < 50; i++) {
      await evictDurableObject(stub(r));
      const from = members[i % 3];
      from.send(`message ${i}`);
      for (const m of members) await expectMessage(m, from, `message ${i}`);
    }
    for (const m of members) {
      expect(m.pending()).toBe(0);
      expect(m.closed).toBeNull();
    }
    expect(await stats(r)).toEqual({ room: r, members: 3, sessions: 3, restored: 150, wakes: 50 });
  });

  it('HTTP push into an evicted room reaches every restored member', async () => {
    const r = room('hib-push');
    const members = await joinAll(r, ['a', 'b']);
    await evictDurableObject(stub(r));
    const res = await SELF.fetch(`${BASE}/chat/${r}/messages`, { method: 'POST', body: 'wake up' });
    expect(await json(res)).toEqual({ delivered: 2 });
    for (const m of members) await expectMessage(m, { id: 'server', name: 'server' }, 'wake up');
  });
});

describe('corrupt or foreign attachments', () => {
  const garbage = {
    'a flipped byte (checksum)': (att) => {
      const b = new Uint8Array(att.slice(0));
      b[b.length - 10] ^= 0x55;
      return b.buffer;
    },
    truncated: (att) => att.slice(0, 20),
    'foreign bytes': () => new TextEncoder().encode('{"user":"someone else"}').buffer,
    'a foreign JS value': () => ({ name: 'not wsedge' }),
    'no attachment': () => null,
  };

  for (const [what, make] of Object.entries(garbage)) {
    it(`${what}: only that socket is closed with 1011, the room goes on`, async () => {
      const r = room('corrupt');
      const members = await joinAll(r, ['a', 'b', 'c']);
      const [a, b, c] = members;
      const tagged = await runInDurableObject(stub(r), (_, state) => {
        const ws = state.getWebSockets().find((w) => state.getTags(w)[0] === b.id);
        ws.serializeAttachment(make(ws.deserializeAttachment()));
        return state.getTags(ws);
      });
      expect(tagged).toEqual([b.id]);
      await evictDurableObject(stub(r));
      a.send('still here');
      expect(await b.closeEvent()).toEqual({ code: 1011, reason: 'session state could not be restored' });
      await expectMessage(a, a, 'still here');
      await expectMessage(c, a, 'still here');
      expect(await stats(r)).toEqual({ room: r, members: 2, sessions: 2, restored: 2, wakes: 1 });
      c.send('and chatting');
      await expectMessage(a, c, 'and chatting');
      await expectMessage(c, c, 'and chatting');
      expect(a.closed).toBeNull();
      expect(c.closed).toBeNull();
      expect(b.pending()).toBe(0);
    });
  }
});
