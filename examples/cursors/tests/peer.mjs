// A test client for the cursors protocol (npm `ws`): every message and the
// close are queued, so a test awaits them in order with a bound; records are
// built and compared as exact bytes.
import WebSocket from 'ws';

export const REC = 31;
export const JOIN = 1, MOVE = 2, LEAVE = 3, SELF = 4;
export const NONE = -1; // x = y = -1: no position yet
const WAIT_MS = 5000;

/** 8 bytes a client sends: x, y as f32 little-endian (any numbers, to test bad ones). */
export function pos(x, y) {
  const b = Buffer.alloc(8);
  b.writeFloatLE(x, 0);
  b.writeFloatLE(y, 4);
  return b;
}

/** One server record: kind, 22-byte id, x, y (f32 LE). */
export function rec(kind, id, x, y) {
  if (id.length !== 22) throw new Error(`bad id ${id}`);
  const b = Buffer.alloc(REC);
  b[0] = kind;
  b.write(id, 1, 'latin1');
  b.writeFloatLE(x, 23);
  b.writeFloatLE(y, 27);
  return b;
}

export function recs(...list) {
  return Buffer.concat(list.map((r) => rec(...r)));
}

/** Records of a message, for messages in failure output. */
export function parse(buf) {
  const out = [];
  for (let o = 0; o + REC <= buf.length; o += REC) {
    out.push([buf[o], buf.toString('latin1', o + 1, o + 23), buf.readFloatLE(o + 23), buf.readFloatLE(o + 27)]);
  }
  return out;
}

export class Peer {
  /** Connects; rejects with { status, body } when the upgrade is refused. */
  static open(url) {
    return new Promise((resolve, reject) => {
      const p = new Peer(new WebSocket(url));
      const timer = setTimeout(() => { p.ws.terminate(); reject(new Error(`connect ${url}: timeout`)); }, WAIT_MS);
      p.ws.once('open', () => { clearTimeout(timer); resolve(p); });
      p.ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => { clearTimeout(timer); const e = new Error(`upgrade refused: ${res.statusCode}`); e.status = res.statusCode; e.body = body; reject(e); });
      });
      p.ws.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closeInfo = null;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.#push({ data, isBinary }));
    ws.on('error', () => { /* the close event reports it */ });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason}`));
      });
    });
  }

  #push(m) {
    const w = this.waiters.shift();
    if (w) w.resolve(m);
    else this.queue.push(m);
  }

  /** The next message: a Buffer (binary messages only; a text one throws). */
  async next(ms = WAIT_MS) {
    const m = this.queue.length ? this.queue.shift() : await new Promise((resolve, reject) => {
      if (this.closeInfo) return reject(new Error(`closed ${this.closeInfo.code} ${this.closeInfo.reason}`));
      const w = { resolve, reject };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) { this.waiters.splice(i, 1); reject(new Error(`no message within ${ms} ms`)); }
      }, ms);
    });
    if (!m.isBinary) throw new Error(`unexpected text message: ${m.data}`);
    return m.data;
  }

  /** Resolves true when nothing arrives within ms (what "not sent to me" can be checked as). */
  async quiet(ms = 300) {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.length === 0;
  }

  send(buf) { this.ws.send(buf); }
  sendText(s) { this.ws.send(s); }

  /** Close and wait for the close to complete. */
  async close(code = 1000) {
    if (!this.closeInfo) this.ws.close(code);
    return this.closedWithin();
  }

  closedWithin(ms = WAIT_MS) {
    return Promise.race([
      this.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms)),
    ]);
  }

  terminate() { this.ws.terminate(); }
}

/** The id in a SELF record (the first record of a snapshot). */
export function selfId(snapshot) {
  if (snapshot[0] !== SELF) throw new Error(`not a snapshot: ${JSON.stringify(parse(snapshot))}`);
  return snapshot.toString('latin1', 1, 23);
}
