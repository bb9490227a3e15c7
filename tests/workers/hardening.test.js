// Hardening at the edge (Vitest inside workerd): eviction while members chat
// concurrently, attachments that are corrupt in every way the codec
// distinguishes (valid checksum but wrong version / foreign magic / bad
// field / unknown route / over the user-data budget / duplicate id) or that
// workerd itself refuses (> 16,384 bytes), malformed upgrades sent straight
// to the Durable Object stub (bypassing the Worker) and the Origin check.
// tests/workers/hibernation.test.js covers the basic corrupt cases (flipped
// byte, truncated, foreign bytes/JS value, none); these go further.
import { SELF, env, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { BASE, SID, connect, upgradeHeaders, room, stub, joinAll, stats } from './helpers.js';
import { WebSocketContext } from '../../bindings/workers/wsedge.js';

/** Resolve when cond() holds, polling (bounded). */
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// CRC-32 (IEEE), as the core's attachment codec uses it
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(u8) {
  let c = 0xffffffff;
  for (const b of u8) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** Re-seal an edited attachment with a correct checksum. */
function reseal(u8) {
  new DataView(u8.buffer, u8.byteOffset).setUint32(u8.length - 4, crc32(u8.subarray(0, u8.length - 4)), true);
  return u8;
}
/**
 * Take a real attachment apart (layout of wasm/src/session.c, version 2:
 * "WSE", version, flags, pattern length u8, topic count u8, user length
 * u16, id, joined, last seen, pattern, topics (length u8 + bytes), user,
 * CRC-32) and build it again with some parts replaced, resealed.
 */
function buildAttachment(orig, { version = 2, flags = 0, pattern, topics, user, magic = 'WSE' } = {}) {
  const o = new Uint8Array(orig);
  expect(o[3]).toBe(2); // the core's current version: the parts below are v2's
  const pl = o[5], nt = o[6], ul = o[7] | (o[8] << 8);
  let at = 41;
  const origPattern = o.subarray(at, at + pl);
  at += pl;
  const origTopics = [];
  for (let i = 0; i < nt; i++) {
    origTopics.push(o.subarray(at + 1, at + 1 + o[at]));
    at += 1 + o[at];
  }
  const origUser = o.subarray(at, at + ul);
  const te = new TextEncoder();
  const pat = pattern === undefined ? origPattern : te.encode(pattern);
  const tops = topics ?? origTopics;
  const usr = user ?? origUser;
  const size = 41 + pat.length + tops.reduce((n, t) => n + 1 + t.length, 0) + usr.length + 4;
  const out = new Uint8Array(size);
  out.set(o.subarray(0, 41));
  out.set(te.encode(magic).subarray(0, 3), 0);
  out[3] = version;
  out[4] = flags;
  out[5] = pat.length;
  out[6] = tops.length;
  out[7] = usr.length & 0xff;
  out[8] = usr.length >> 8;
  at = 41;
  out.set(pat, at);
  at += pat.length;
  for (const t of tops) {
    out[at] = t.length;
    out.set(t, at + 1);
    at += 1 + t.length;
  }
  out.set(usr, at);
  return reseal(out);
}

describe('eviction under load', () => {
  it('6 members chatting concurrently, evicted every few messages: 0 sessions lost, 0 messages lost, order kept', async () => {
    const r = room('load');
    const names = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'];
    const members = await joinAll(r, names);
    const ROUNDS = 40;
    // every member records what it gets, per sender, as it arrives
    const got = members.map(() => new Map());
    const bad = [];
    members.forEach((m, i) => {
      m.ws.addEventListener('message', (ev) => {
        const e = JSON.parse(ev.data);
        if (e.type !== 'message') return bad.push(`${m.name} got ${ev.data}`);
        const [from, seq] = e.text.split('#');
        const want = (got[i].get(from) ?? 0) + 1;
        if (Number(seq) !== want) bad.push(`${m.name}: ${from}#${seq}, expected #${want}`);
        if (e.name !== from) bad.push(`${m.name}: ${from}'s message carries name ${e.name}`);
        got[i].set(from, Number(seq));
      });
    });
    let evictions = 0;
    for (let k = 1; k <= ROUNDS; k++) {
      // everyone sends without waiting for anything
      for (const m of members) m.ws.send(`${m.name}#${k}`);
      if (k % 2 === 0) {
        // wake an instance if the last eviction left none (messages still in
        // flight may be what wakes it), then evict it mid-stream
        await runInDurableObject(stub(r), () => {});
        await evictDurableObject(stub(r));
        evictions++;
      }
    }
    await until(() => got.every((g) => names.every((s) => g.get(s) === ROUNDS)), 15000,
      `all ${ROUNDS * names.length} messages at every member (${got.map((g) => [...g.values()].reduce((a, b) => a + b, 0)).join(',')})`);
    expect(bad).toEqual([]);
    for (const m of members) expect(m.closed).toBeNull();
    const st = await stats(r);
    expect(st).toMatchObject({ room: r, members: 6, sessions: 6 });
    expect(st.wakes).toBeGreaterThanOrEqual(1);
    console.log(`eviction under load: ${ROUNDS * names.length} messages x ${names.length} members delivered across ${evictions} evictions; last instance: ${JSON.stringify(st)}`);
  });

  it('joins between evictions keep the counts exact', async () => {
    const r = room('churn');
    const members = await joinAll(r, ['a', 'b']);
    for (let i = 0; i < 8; i++) {
      await evictDurableObject(stub(r));
      const c = await connect(`/chat/${r}?name=c${i}`);
      const j = JSON.parse(await c.next());
      expect(j).toEqual({ type: 'join', id: j.id, name: `c${i}`, count: 3 });
      for (const m of members) expect(JSON.parse(await m.next())).toEqual(j);
      // the room is awake: the leave goes out at once
      c.ws.close(1000, 'bye');
      expect(await c.closeEvent()).toEqual({ code: 1000, reason: 'bye' });
      for (const m of members) expect(await m.next()).toBe(`{"type":"leave","id":"${j.id}","name":"c${i}","count":2}`);
    }
    expect(await stats(r)).toMatchObject({ members: 2, sessions: 2 });
    for (const m of members) {
      expect(m.closed).toBeNull();
      expect(m.pending()).toBe(0);
    }
  });

  it('a member that leaves while the room hibernates: the others still get its leave', async () => {
    // The close is the event that wakes the object. The session of the
    // closing socket must be restored (its attachment is intact) so that the
    // leave reaches the others; otherwise they keep a ghost member.
    const r = room('hib-leave');
    const [a, b, c] = await joinAll(r, ['a', 'b', 'c']);
    await evictDurableObject(stub(r));
    c.ws.close(1000, 'bye');
    expect(await c.closeEvent()).toEqual({ code: 1000, reason: 'bye' });
    for (const m of [a, b]) expect(await m.next()).toBe(`{"type":"leave","id":"${c.id}","name":"c","count":2}`);
    expect(await stats(r)).toMatchObject({ members: 2, sessions: 2 });
  });
});

describe('attachments the core must refuse (only that socket closed with 1011)', () => {
  const cases = {
    'version 1 (a route index, one room: before this deploy), valid checksum': (a) => buildAttachment(a, { version: 1 }),
    'a future version, valid checksum': (a) => buildAttachment(a, { version: 3 }),
    'version 0, valid checksum': (a) => buildAttachment(a, { version: 0 }),
    'foreign magic of a valid length, valid checksum': (a) => buildAttachment(a, { magic: 'XYZ' }),
    'non-zero flags, valid checksum': (a) => buildAttachment(a, { flags: 1 }),
    'a topic that is not UTF-8, valid checksum': (a) => buildAttachment(a, { topics: [new Uint8Array([0x62, 0xff, 0xfe])] }),
    'seventeen topics, valid checksum': (a) => buildAttachment(a, { topics: Array.from({ length: 17 }, (_, i) => new TextEncoder().encode(`t${i}`)) }),
    'a route this app does not have (a later deploy removed it), valid checksum': (a) => buildAttachment(a, { pattern: '/gone/:room' }),
    'user data over the 8,192-byte budget (fits workerd), valid checksum': (a) =>
      buildAttachment(a, { user: new Uint8Array(9000).fill(7) }),
    'length fields that disagree with the size': (a) => {
      const u = new Uint8Array(a.slice(0));
      const out = new Uint8Array(u.length + 5);
      out.set(u.subarray(0, u.length - 4));
      return reseal(out);
    },
    'an empty ArrayBuffer': () => new Uint8Array(0),
    'a typed array view over a foreign buffer': () => new Uint16Array([1, 2, 3]),
  };

  for (const [what, make] of Object.entries(cases)) {
    it(what, async () => {
      const r = room('att');
      const members = await joinAll(r, ['a', 'b', 'c']);
      const [a, b, c] = members;
      await runInDurableObject(stub(r), (_, state) => {
        const ws = state.getWebSockets().find((w) => state.getTags(w)[0] === b.id);
        const v = make(ws.deserializeAttachment());
        ws.serializeAttachment(v instanceof Uint8Array ? v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) : v);
      });
      await evictDurableObject(stub(r));
      a.send('still here');
      expect(await b.closeEvent()).toEqual({ code: 1011, reason: 'session state could not be restored' });
      for (const m of [a, c]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: a.id, name: 'a', text: 'still here' });
      expect(await stats(r)).toMatchObject({ members: 2, sessions: 2, restored: 2, wakes: 1 });
      expect(a.closed).toBeNull();
      expect(c.closed).toBeNull();
    });
  }

  it('the builder itself is faithful: an attachment rebuilt unchanged (or with a new user blob) restores', async () => {
    const r = room('att-ok');
    const [a, b] = await joinAll(r, ['a', 'b']);
    await runInDurableObject(stub(r), (_, state) => {
      for (const ws of state.getWebSockets()) {
        const same = buildAttachment(ws.deserializeAttachment());
        expect(new Uint8Array(same)).toEqual(new Uint8Array(ws.deserializeAttachment()));
        const renamed = state.getTags(ws)[0] === b.id ? buildAttachment(same, { user: new TextEncoder().encode('bee') }) : same;
        ws.serializeAttachment(renamed.buffer);
      }
    });
    await evictDurableObject(stub(r));
    b.send('hi');
    for (const m of [a, b]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', name: 'bee', text: 'hi' });
    expect(await stats(r)).toMatchObject({ members: 2, sessions: 2, restored: 2 });
  });

  it('two corrupt among five: exactly those two are closed', async () => {
    const r = room('att2');
    const members = await joinAll(r, ['a', 'b', 'c', 'd', 'e']);
    const bad = [members[1], members[3]];
    await runInDurableObject(stub(r), (_, state) => {
      for (const ws of state.getWebSockets()) {
        if (bad.some((m) => m.id === state.getTags(ws)[0])) ws.serializeAttachment(buildAttachment(ws.deserializeAttachment(), { version: 9 }).buffer);
      }
    });
    await evictDurableObject(stub(r));
    members[0].send('hi');
    for (const m of bad) expect(await m.closeEvent()).toEqual({ code: 1011, reason: 'session state could not be restored' });
    for (const m of [members[0], members[2], members[4]]) {
      expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', text: 'hi', name: 'a' });
      expect(m.closed).toBeNull();
    }
    expect(await stats(r)).toMatchObject({ members: 3, sessions: 3, restored: 3 });
  });

  it('a duplicated session (two sockets carrying the same attachment): one is closed with 1011, the room goes on', async () => {
    const r = room('dup');
    const members = await joinAll(r, ['a', 'b', 'c']);
    const [a, b, c] = members;
    await runInDurableObject(stub(r), (_, state) => {
      const wss = state.getWebSockets();
      const wa = wss.find((w) => state.getTags(w)[0] === a.id);
      const wb = wss.find((w) => state.getTags(w)[0] === b.id);
      wb.serializeAttachment(wa.deserializeAttachment());
    });
    await evictDurableObject(stub(r));
    c.send('who is there');
    // exactly one of a and b is refused (the second copy of the id)
    await until(() => a.closed || b.closed, 5000, 'one of the two copies to be closed');
    const [closed, survivor] = a.closed ? [a, b] : [b, a];
    expect(closed.closed).toEqual({ code: 1011, reason: 'session state could not be restored' });
    expect(JSON.parse(await c.next())).toMatchObject({ type: 'message', text: 'who is there', name: 'c' });
    expect(JSON.parse(await survivor.next())).toMatchObject({ type: 'message', text: 'who is there', name: 'c' });
    expect(survivor.closed).toBeNull();
    expect(await stats(r)).toMatchObject({ members: 2, sessions: 2, restored: 2 });
  });

  it('an attachment over 16,384 bytes is refused by workerd; the old one stays and restores', async () => {
    const r = room('big');
    const members = await joinAll(r, ['a', 'b']);
    const [a, b] = members;
    const err = await runInDurableObject(stub(r), (_, state) => {
      const ws = state.getWebSockets().find((w) => state.getTags(w)[0] === b.id);
      const before = new Uint8Array(ws.deserializeAttachment());
      let thrown = null;
      try {
        ws.serializeAttachment(new Uint8Array(16385).buffer);
      } catch (e) {
        thrown = String(e && e.message);
      }
      const after = new Uint8Array(ws.deserializeAttachment());
      return { thrown, same: before.length === after.length && before.every((x, i) => x === after[i]) };
    });
    expect(err.thrown).toBeTruthy();
    expect(err.same).toBe(true);
    await evictDurableObject(stub(r));
    b.send('restored intact');
    for (const m of members) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: b.id, name: 'b', text: 'restored intact' });
    expect(a.closed).toBeNull();
    expect(b.closed).toBeNull();
    console.log(`workerd refuses a 16,385-byte attachment: ${err.thrown}`);
  });
});

describe('malformed upgrades straight at the Durable Object (bypassing the Worker)', () => {
  const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
  const j = (error) => JSON.stringify({ error });
  const cases = [
    ['no Sec-WebSocket-Key', { 'Sec-WebSocket-Key': undefined }, {}, 400, j('missing Sec-WebSocket-Key')],
    ['a 15-byte key', { 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAA' }, {}, 400, j('Sec-WebSocket-Key must be base64 of 16 bytes')],
    ['a key that is not base64', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' }, {}, 400, j('Sec-WebSocket-Key must be base64 of 16 bytes')],
    ['version 8', { 'Sec-WebSocket-Version': '8' }, {}, 426, j('unsupported Sec-WebSocket-Version (expected 13)'), { 'sec-websocket-version': '13' }],
    ['no version', { 'Sec-WebSocket-Version': undefined }, {}, 400, j('missing Sec-WebSocket-Version header')],
    ['Connection without upgrade', { Connection: 'keep-alive' }, {}, 400, j('Connection header lacks the upgrade token')],
    ['a foreign Origin', { Origin: 'https://evil.example' }, {}, 403, j('origin not allowed')],
    ['an invalid name', {}, { query: '?name=%01bad' }, 400, j('invalid name')],
    ['a 33-byte name', {}, { query: `?name=${'n'.repeat(33)}` }, 400, j('invalid name')],
    ['an invalid room', {}, { room: 'bad!room' }, 400, j('invalid room')],
  ];

  for (const [what, hdrs, opt, status, body, extra = {}] of cases) {
    it(`${what} -> ${status}, the same answer as through the Worker`, async () => {
      const rm = opt.room ?? room('bad');
      const url = `${BASE}/chat/${rm}${opt.query ?? '?name=x'}`;
      const h = upgradeHeaders({ 'Sec-WebSocket-Key': KEY, ...hdrs });
      for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
      const init = () => ({ method: opt.method ?? 'GET', headers: h, body: opt.body });
      const direct = await stub(rm).fetch(new Request(url, init()));
      const via = await SELF.fetch(url, init());
      for (const res of [direct, via]) {
        expect(res.status).toBe(status);
        expect(res.webSocket).toBeNull();
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        for (const [k, v] of Object.entries(extra)) expect(res.headers.get(k)).toBe(v);
      }
      expect(await direct.text()).toBe(body);
      expect(await via.text()).toBe(body);
      // nothing was created in the room
      if (!opt.room) expect(await stats(rm)).toMatchObject({ members: 0, sessions: 0 });
    });
  }

  it('POST with Upgrade: websocket: workerd turns it into a GET upgrade; the core itself answers 405', async () => {
    // Platform fact (observed): a fetch carrying Upgrade: websocket reaches
    // the Worker and the object as a GET upgrade, so a POST upgrade never gets
    // to the core at the edge (cf. the README note on wrangler dev's proxy).
    // If this ever changes, this assertion says so.
    const rm = room('post');
    const via = await SELF.fetch(`${BASE}/chat/${rm}?name=p`, { method: 'POST', headers: upgradeHeaders(), body: 'x' });
    expect(via.status).toBe(101);
    via.webSocket.accept();
    via.webSocket.close(1000);
    // the shim + core given the request as written: 405, Allow: GET, the core's JSON
    const ctx = WebSocketContext.fromRequest(new Request(`${BASE}/chat/${rm}?name=p`, { method: 'POST', headers: upgradeHeaders(), body: 'x' }));
    expect(ctx.ok).toBe(false);
    expect(ctx.response.status).toBe(405);
    expect(ctx.response.headers.get('allow')).toBe('GET');
    expect(await ctx.response.text()).toBe('{"error":"method not allowed (expected GET)"}');
  });

  it('a plain GET on the room (no upgrade) -> 400 JSON from the object too', async () => {
    const rm = room('plain');
    const direct = await stub(rm).fetch(new Request(`${BASE}/chat/${rm}`));
    const via = await SELF.fetch(`${BASE}/chat/${rm}`);
    expect(direct.status).toBe(400);
    expect(via.status).toBe(400);
    const [d, v] = [await direct.json(), await via.json()];
    expect(d).toEqual(v);
    expect(typeof d.error).toBe('string');
  });

  it('a valid upgrade straight at the stub is accepted (101 with a socket)', async () => {
    const rm = room('direct-ok');
    const res = await stub(rm).fetch(new Request(`${BASE}/chat/${rm}?name=d`, { headers: upgradeHeaders() }));
    expect(res.status).toBe(101);
    expect(res.webSocket).toBeTruthy();
    res.webSocket.accept();
    res.webSocket.close(1000);
  });
});

describe('Origin allow-list at the edge', () => {
  it('a cross-origin browser upgrade (Origin https://evil.example, Host 127.0.0.1) -> 403 JSON', async () => {
    for (const p of ['/ws', `/chat/${room('origin')}?name=eve`]) {
      const res = await SELF.fetch(`http://127.0.0.1${p}`, { headers: upgradeHeaders({ Origin: 'https://evil.example' }) });
      expect(res.status).toBe(403);
      expect(res.webSocket).toBeNull();
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.text()).toBe('{"error":"origin not allowed"}');
    }
  });

  it('look-alike origins are refused; same-origin and Origin-less upgrades pass', async () => {
    // (the same-host rule compares host[:port] only, not the scheme: the
    // server cannot know the scheme a TLS terminator in front of it used)
    for (const o of ['http://127.0.0.1.evil.example', 'http://127.0.0.1:8080', 'null', 'http://evil.example@127.0.0.1']) {
      const res = await SELF.fetch('http://127.0.0.1/ws', { headers: upgradeHeaders({ Origin: o }) });
      expect(res.status, `Origin: ${o}`).toBe(403);
    }
    for (const h of [{ Origin: 'http://127.0.0.1' }, {}]) {
      const res = await SELF.fetch('http://127.0.0.1/ws', { headers: upgradeHeaders(h) });
      expect(res.status).toBe(101);
      res.webSocket.accept();
      res.webSocket.close(1000);
    }
  });
});
