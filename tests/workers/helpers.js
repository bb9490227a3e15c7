// Shared helpers for the Workers suite: raw upgrade requests through the real
// Worker (SELF.fetch hands it the request as written), and a socket wrapper
// whose next() waits for the next message or close, bounded in time.
import { SELF, env } from 'cloudflare:test';
import { expect } from 'vitest';

export const BASE = 'http://example.com';
export const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // RFC 6455 §1.3
export const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
export const SID = /^[A-Za-z0-9_-]{22}$/;

export function upgradeHeaders(extra = {}) {
  return {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
}

export function upgrade(path, extra = {}, init = {}) {
  return SELF.fetch(BASE + path, { headers: upgradeHeaders(extra), ...init });
}

const WAIT_MS = 5000;

// A chat room event (join, message, leave) ends with ,"seq":N}: N grows
// by one per event of the room, so every client sees it grow. next() checks
// that and gives the event without it (tests about other things compare
// the rest byte for byte); a Client with .raw = true gets it as sent, and
// .seqs lists the numbers seen.
const SEQ_AT_END = /,"seq":([1-9][0-9]*)\}$/;
const NUMBERED = new Set(['join', 'message', 'leave']);
function stripSeq(client, data) {
  if (typeof data !== 'string' || data[0] !== '{') return data;
  let type;
  try { type = JSON.parse(data).type; } catch { return data; }
  const m = SEQ_AT_END.exec(data);
  if (!NUMBERED.has(type)) {
    expect(m, `a ${type} event carries no seq: ${data}`).toBeNull();
    return data;
  }
  expect(m, `a ${type} event ends with its seq: ${data}`).not.toBeNull();
  const seq = Number(m[1]);
  const last = client.seqs.at(-1) ?? 0;
  expect(seq, `seq grows: ${data}`).toBeGreaterThan(last);
  client.seqs.push(seq);
  return `${data.slice(0, m.index)}}`;
}

export class Client {
  constructor(ws, res) {
    this.ws = ws;
    this.res = res;
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    this.seqs = [];
    this.raw = false;
    ws.addEventListener('message', (ev) => this.push({ data: ev.data }));
    ws.addEventListener('close', (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      this.push({ close: this.closed });
    });
    ws.accept();
  }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.queue.push(item);
  }

  /** The next event: {data} or {close: {code, reason}}. */
  nextEvent(what = 'an event') {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(done), 1);
        reject(new Error(`no ${what} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      const done = (item) => {
        clearTimeout(t);
        resolve(item);
      };
      this.waiters.push(done);
    });
  }

  async next() {
    const ev = await this.nextEvent('message');
    if (ev.close) throw new Error(`socket closed (${ev.close.code} ${ev.close.reason}) while a message was expected`);
    return this.raw ? ev.data : stripSeq(this, ev.data);
  }

  async json() {
    const d = await this.next();
    expect(typeof d).toBe('string');
    return JSON.parse(d);
  }

  async closeEvent() {
    const ev = await this.nextEvent('close');
    if (!ev.close) throw new Error(`expected a close, got a message: ${ev.data}`);
    return ev.close;
  }

  send(d) {
    this.ws.send(d);
  }

  pending() {
    return this.queue.length;
  }
}

export async function connect(path, extra = {}) {
  const res = await upgrade(path, extra);
  if (res.status !== 101) throw new Error(`upgrade ${path}: ${res.status} ${await res.text()}`);
  expect(res.webSocket).toBeTruthy();
  return new Client(res.webSocket, res);
}

export async function json(res) {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return JSON.parse(await res.text());
}

// ---- chat rooms (shared by the chat, hibernation, wake and hardening files)

let roomSeq = 0;
/** A fresh room name per test, so tests never share a Durable Object. */
export const room = (tag) => `${tag}-${++roomSeq}-${Math.random().toString(36).slice(2, 8)}`;
/** The room's Durable Object stub (for evictDurableObject / runInDurableObject). */
export const stub = (r) => env.CHAT_ROOMS.get(env.CHAT_ROOMS.idFromName(r));

/** Join members one by one; every member already in sees each join event. */
export async function joinAll(r, names) {
  const members = [];
  for (const name of names) {
    const c = await connect(`/chat/${r}?name=${name}`);
    const ev = JSON.parse(await c.next());
    expect(ev.id).toMatch(SID);
    c.id = ev.id;
    c.name = name;
    for (const m of members) expect(JSON.parse(await m.next())).toEqual(ev);
    members.push(c);
  }
  return members;
}

/** GET /chat/:room/stats through the Worker: 200 with a JSON body. */
export async function stats(r) {
  const res = await SELF.fetch(`${BASE}/chat/${r}/stats`);
  expect(res.status).toBe(200);
  return json(res);
}
