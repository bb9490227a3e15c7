// Limits and timeouts the edge enforces itself (the README's table of
// wse_config_t on both targets): max_message_size in the shim, before the
// bytes enter wasm (1009, the native server's words); the session lifetime
// (4000 "timeout") by a timer in the Worker and by the object's alarm in a
// room, through hibernation; settings from options.config and wrangler vars.
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import { short } from './multi/worker.js';
import { WsedgeApp } from '../../bindings/workers/wsedge.js';
import { BASE, Client, upgradeHeaders } from './helpers.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shortRoom = (name) => env.SHORT_ROOMS.get(env.SHORT_ROOMS.idFromName(name));

async function open(res) {
  expect(res.status).toBe(101);
  return new Client(res.webSocket, res);
}

const TOO_BIG = { code: 1009, reason: 'message too big' };

describe('max_message_size at the edge', () => {
  it('a text message of the limit passes; one byte over closes 1009, counted in UTF-8 bytes', async () => {
    const c = await open(await short.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() }), env));
    c.send('x'.repeat(64));
    expect(await c.next()).toBe('x'.repeat(64));
    c.send('é'.repeat(22)); // 44 bytes
    expect(await c.next()).toBe('é'.repeat(22));
    c.send('é'.repeat(33)); // 33 UTF-16 units, 66 bytes
    expect(await c.closeEvent()).toEqual(TOO_BIG);
  });

  it('binary over the limit closes 1009; the room goes on for the others', async () => {
    const s = shortRoom(`big-${Math.random()}`);
    const a = await open(await s.fetch(new Request(`${BASE}/chat/big?name=a`, { headers: upgradeHeaders() })));
    const b = await open(await s.fetch(new Request(`${BASE}/chat/big?name=b`, { headers: upgradeHeaders() })));
    expect((await a.json()).type).toBe('join');
    expect((await a.json()).name).toBe('b');
    expect((await b.json()).name).toBe('b');
    b.send(new Uint8Array(65));
    expect(await b.closeEvent()).toEqual(TOO_BIG);
    expect(await a.json()).toMatchObject({ type: 'leave', name: 'b', count: 1 });
    a.send('still here');
    expect(await a.json()).toMatchObject({ type: 'message', name: 'a', text: 'still here' });
  });
});

describe('session lifetime at the edge (close 4000 "timeout")', () => {
  it('in the Worker: a timer closes the session when its lifetime ends', async () => {
    const c = await open(await short.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() }), env));
    c.send('hi');
    expect(await c.next()).toBe('hi');
    expect(await c.closeEvent()).toEqual({ code: 4000, reason: 'timeout' });
  });

  it("in a room: the object's alarm closes it, also after the room hibernated", async () => {
    const s = shortRoom(`life-${Math.random()}`);
    const a = await open(await s.fetch(new Request(`${BASE}/chat/life?name=a`, { headers: upgradeHeaders() })));
    expect(await a.json()).toMatchObject({ type: 'join', name: 'a', count: 1 });
    await evictDurableObject(s);
    await sleep(1100);
    // the alarm is due: run it now if the runtime has not yet (it is the same alarm)
    await runDurableObjectAlarm(s);
    expect(await a.closeEvent()).toEqual({ code: 4000, reason: 'timeout' });
    // nothing is left scheduled: no session, no alarm
    expect(await runDurableObjectAlarm(s)).toBe(false);
  });

  it("after a lifetime ends the alarm is set for the next one, not for the past (the core's next end, read whole)", async () => {
    const s = shortRoom(`next-${Math.random()}`);
    const a = await open(await s.fetch(new Request(`${BASE}/chat/next?name=a`, { headers: upgradeHeaders() })));
    expect(await a.json()).toMatchObject({ type: 'join', name: 'a' });
    await sleep(500);
    const b = await open(await s.fetch(new Request(`${BASE}/chat/next?name=b`, { headers: upgradeHeaders() })));
    expect(await a.json()).toMatchObject({ type: 'join', name: 'b' });
    expect(await b.json()).toMatchObject({ type: 'join', name: 'b' });
    const bEnd = await runInDurableObject(s, (obj) => { // the later of the two ends
      const { host } = obj.sessions;
      let end = 0;
      for (let h = 0; h < host.sockets.length; h++) if (host.sockets[h]) end = Math.max(end, host.cx.sessionEnd(h));
      return end;
    });
    expect(bEnd).toBeGreaterThan(Date.now());
    expect(await a.closeEvent()).toEqual({ code: 4000, reason: 'timeout' });
    // the object's clock after a's end: b's end exactly (a u64 of ms since
    // the epoch passes two result words; a misread gave a time in 1970 and
    // an alarm that fired again at once, for ever)
    const next = await runInDurableObject(s, async (obj, state) => ({
      expire: obj.sessions.context.expire(), alarm: await state.storage.getAlarm(),
    }));
    expect(next.expire).toBe(bEnd);
    expect(next.alarm).toBe(bEnd);
    expect(await b.json()).toMatchObject({ type: 'leave', name: 'a' });
    expect(await b.closeEvent()).toEqual({ code: 4000, reason: 'timeout' });
  });
});

describe('settings: options.config, then wrangler vars over it', () => {
  it('vars win over config, in the native syntax; a bad value names its source', () => {
    const app = new WsedgeApp(short.module, { config: { maxMessageSize: 10, sessionTimeout: 5 } });
    expect(app.settings).toEqual({ maxMessageSize: 10, sessionTimeout: 5 });
    app.useEnv({ WSEDGE_MAX_MESSAGE_SIZE: '2k', WSEDGE_ALLOW_ORIGINS: 'https://a.example, https://b.example' });
    expect(app.settings).toEqual({ maxMessageSize: 2048, sessionTimeout: 5, allowOrigins: ['https://a.example', 'https://b.example'] });
    expect(() => new WsedgeApp(short.module, { config: { maxMessageSize: 'lots' } })).toThrow(/invalid config\.maxMessageSize 'lots'/);
    expect(() => app.useEnv({ WSEDGE_WEBSOCKET_TIMEOUT: '1m' })).toThrow(/invalid WSEDGE_WEBSOCKET_TIMEOUT '1m'/);
    expect(() => app.useEnv({ WSEDGE_ALLOW_ORIGINS: 'ftp://x' })).toThrow(/invalid WSEDGE_ALLOW_ORIGINS 'ftp:\/\/x'/);
    const h = new WsedgeApp(short.module, { config: { historyFlushMs: 0 } });
    expect(h.settings).toEqual({ historyFlushMs: 0 });
    h.useEnv({ WSEDGE_HISTORY_FLUSH_MS: '250' });
    expect(h.settings).toEqual({ historyFlushMs: 250 });
    expect(() => h.useEnv({ WSEDGE_HISTORY_FLUSH_MS: '2000' })).toThrow(/invalid WSEDGE_HISTORY_FLUSH_MS '2000': must be 0\.\.1000/);
    expect(() => h.useEnv({ WSEDGE_HISTORY_FLUSH_MS: '1s' })).toThrow(/invalid WSEDGE_HISTORY_FLUSH_MS '1s': expected whole milliseconds/);
  });

  it('allowed origins from a var are the core\'s Origin check (403 JSON for others)', async () => {
    const app = new WsedgeApp(short.module);
    const vars = { WSEDGE_ALLOW_ORIGINS: 'https://a.example' }; // the Worker's env, as wrangler.toml [vars] give it
    const ok = await app.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders({ Origin: 'https://a.example' }) }), vars);
    expect(ok.status).toBe(101);
    ok.webSocket.accept();
    ok.webSocket.close(1000);
    const no = await app.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders({ Origin: 'https://evil.example' }) }), vars);
    expect(no.status).toBe(403);
    expect((await no.json()).error).toMatch(/origin/i);
  });
});
