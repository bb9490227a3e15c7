// Positions survive hibernation: each session's last position is its user
// data, stored in its socket's attachment; after evictDurableObject the
// board's object wakes on the next event, rebuilds every session from the
// attachments, and the snapshot, moves and leaves carry the stored
// positions. Runs in workerd (vitest-pool-workers), through the real Worker.
import { SELF, env, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';

const REC = 31, JOIN = 1, MOVE = 2, LEAVE = 3, SELF_ = 4, NONE = -1;
const WAIT_MS = 5000;

const pos = (x, y) => {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat32(0, x, true);
  b.setFloat32(4, y, true);
  return b.buffer;
};
const f32 = Math.fround;
/** [kind, id, x, y] per record. */
function parse(buf) {
  const dv = new DataView(buf), u8 = new Uint8Array(buf), out = [];
  expect(buf.byteLength % REC).toBe(0);
  for (let o = 0; o < buf.byteLength; o += REC) {
    out.push([u8[o], String.fromCharCode(...u8.subarray(o + 1, o + 23)), dv.getFloat32(o + 23, true), dv.getFloat32(o + 27, true)]);
  }
  return out;
}

class Peer {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    ws.addEventListener('message', (ev) => this.push({ data: ev.data }));
    ws.addEventListener('close', (ev) => this.push({ close: { code: ev.code, reason: ev.reason } }));
    ws.accept();
  }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.queue.push(item);
  }

  event() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const done = (item) => { clearTimeout(t); resolve(item); };
      const t = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(done), 1); reject(new Error(`nothing within ${WAIT_MS} ms`)); }, WAIT_MS);
      this.waiters.push(done);
    });
  }

  /** The next message's records. */
  async next() {
    const ev = await this.event();
    if (ev.close) throw new Error(`closed ${ev.close.code} ${ev.close.reason}`);
    expect(ev.data).toBeInstanceOf(ArrayBuffer);
    return parse(ev.data);
  }
}

const board = (tag) => `${tag}-${Math.random().toString(36).slice(2, 10)}`;
const stub = (b) => env.CURSOR_BOARDS.get(env.CURSOR_BOARDS.idFromName(b));
/** The object's lifetime wake count: the shim keeps [wakes, restored] in
 * the object's storage under 'wsedge:counters' (proof that it really woke). */
const wakes = (b) => runInDurableObject(stub(b), async (obj, state) => {
  obj.sessions.flushHistory(); // the count is written with the room's next commit
  const v = state.storage.kv ? state.storage.kv.get('wsedge:counters') : await state.storage.get('wsedge:counters');
  return v ? v[0] : 0;
});

async function join(b) {
  const res = await SELF.fetch(`http://example.com/cursors/${b}`, {
    headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' },
  });
  expect(res.status).toBe(101);
  const p = new Peer(res.webSocket);
  p.snapshot = await p.next();
  expect(p.snapshot[0][0]).toBe(SELF_);
  p.id = p.snapshot[0][1];
  return p;
}

describe('cursors across hibernation', () => {
  it('a joiner after a wake gets every stored position; moves and leaves carry them', async () => {
    const b = board('wake');
    const a = await join(b);
    const c = await join(b);
    expect(await a.next()).toEqual([[JOIN, c.id, NONE, NONE]]);
    a.ws.send(pos(0.25, 0.75));
    expect(await c.next()).toEqual([[MOVE, a.id, 0.25, 0.75]]);
    c.ws.send(pos(0.1, 0.9));
    expect(await a.next()).toEqual([[MOVE, c.id, f32(0.1), f32(0.9)]]);
    const d = await join(b); // never moves
    expect(await a.next()).toEqual([[JOIN, d.id, NONE, NONE]]);
    expect(await c.next()).toEqual([[JOIN, d.id, NONE, NONE]]);

    await evictDurableObject(stub(b));
    // the join wakes the object: its snapshot is rebuilt from the attachments
    const e = await join(b);
    expect(e.snapshot[0]).toEqual([SELF_, e.id, NONE, NONE]);
    expect(e.snapshot.slice(1).sort()).toEqual([
      [JOIN, a.id, 0.25, 0.75], [JOIN, c.id, f32(0.1), f32(0.9)], [JOIN, d.id, NONE, NONE]].sort());
    for (const m of [a, c, d]) expect(await m.next()).toEqual([[JOIN, e.id, NONE, NONE]]);

    // a repeat of the restored position is not news; the next move is
    await evictDurableObject(stub(b));
    a.ws.send(pos(0.25, 0.75));
    a.ws.send(pos(0.5, 0.5));
    for (const m of [c, d, e]) expect(await m.next()).toEqual([[MOVE, a.id, 0.5, 0.5]]);

    // a close while hibernated: the others get the stored last position
    await evictDurableObject(stub(b));
    c.ws.close(1000, 'bye');
    for (const m of [a, d, e]) expect(await m.next()).toEqual([[LEAVE, c.id, f32(0.1), f32(0.9)]]);
    for (const m of [a, d, e]) expect(m.queue.length).toBe(0);
    expect(await wakes(b)).toBe(3); // three evictions, three restores: really woken
  });

  it('bad input after a wake closes the sender, which leaves with its stored position', async () => {
    const b = board('bad');
    const a = await join(b);
    const w = await join(b);
    expect(await a.next()).toEqual([[JOIN, w.id, NONE, NONE]]);
    a.ws.send(pos(0.125, 0.375));
    expect(await w.next()).toEqual([[MOVE, a.id, 0.125, 0.375]]);
    await evictDurableObject(stub(b));
    a.ws.send(pos(Number.NaN, 0.5));
    expect(await a.event()).toEqual({ close: { code: 1007, reason: 'position out of range' } });
    expect(await w.next()).toEqual([[LEAVE, a.id, 0.125, 0.375]]);
    expect(await wakes(b)).toBe(1);
  });
});
