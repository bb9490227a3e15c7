// The framework shape of the real Worker (worker/index.js): the default
// export is a WsedgeApp, ChatRoom is a WsedgeRoom with no body, and every
// request is routed from the core's own table (the C routes' `durable`
// binding and key), not from JS patterns. A fake namespace in `env` records
// exactly what the Worker asked of it.
import { SELF, env } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import wasmModule from '../../build/wsedge.wasm';
import worker, { ChatRoom } from '../../worker/index.js';
import source from '../../worker/index.js?raw';
import { WsedgeApp, WsedgeRoom, heapStats } from '../../bindings/workers/wsedge.js';
import { BASE, upgradeHeaders, json, room, stats, joinAll } from './helpers.js';

/** env with a CHAT_ROOMS namespace whose stubs answer `answer()` and log every call. */
function fakeEnv(answer = () => Response.json({ fake: true })) {
  const seen = [];
  const CHAT_ROOMS = {
    idFromName: (name) => { seen.push(['idFromName', name]); return `id(${name})`; },
    get: (id) => ({
      fetch: async (req) => { seen.push(['fetch', id, req.method, req.url, req.headers.get('sec-websocket-key')]); return answer(req); },
    }),
  };
  return { env: { CHAT_ROOMS }, seen };
}

describe('the Worker is the contract example', () => {
  it('default export: a WsedgeApp on the module; ChatRoom: a WsedgeRoom with no body', () => {
    expect(worker).toBeInstanceOf(WsedgeApp);
    expect(worker.module).toBe(wasmModule);
    expect(typeof worker.fetch).toBe('function');
    expect(Object.getPrototypeOf(ChatRoom)).toBe(WsedgeRoom);
    expect(Object.getOwnPropertyNames(ChatRoom.prototype)).toEqual(['constructor']);
    expect(Object.getOwnPropertyNames(ChatRoom).sort()).toEqual(['length', 'name', 'prototype']);
    // no route of its own: no pattern, no path test (comments aside)
    const code = source.replace(/\/\/.*$/gm, '');
    expect(code).not.toMatch(/chat\/|RegExp|\.exec\(|pathname|fetch/);
    expect(source).toMatch(/new WsedgeApp\(wasm, \{ page \}\)/);
    expect(source).toMatch(/export default app;/);
  });

  it("app.route() reads the core's table: kind, index, pattern, durable binding, key", () => {
    expect(worker.route(`${BASE}/chat/r1?name=a`)).toEqual({ kind: 'websocket', index: 1, pattern: '/chat/:room', durable: 'CHAT_ROOMS', key: 'r1' });
    expect(worker.route(`${BASE}/ws`)).toEqual({ kind: 'websocket', index: 0, pattern: '/ws', durable: null, key: null });
    expect(worker.route(`${BASE}/chat/r%C3%A9/messages`)).toEqual({ kind: 'http', index: 0, pattern: '/chat/:room/messages', durable: 'CHAT_ROOMS', key: 'r%C3%A9' });
    expect(worker.route(new Request(`${BASE}/chat/x/stats?y=1`))).toEqual({ kind: 'http', index: 1, pattern: '/chat/:room/stats', durable: 'CHAT_ROOMS', key: 'x' });
    for (const p of ['/', '/nope', '/chat', '/chat/', '/chat/a/b/c', '/ws/x']) {
      expect(worker.route(BASE + p), p).toEqual({ kind: 'none', index: -1, pattern: null, durable: null, key: null });
    }
  });
});

describe('routing from the core table (fake CHAT_ROOMS namespace)', () => {
  it('an HTTP route with durable: the request as it is, to the object named by the key', async () => {
    const { env: fake, seen } = fakeEnv();
    const res = await worker.fetch(new Request(`${BASE}/chat/r%C3%A9/stats?x=1`), fake);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ fake: true });
    expect(seen).toEqual([['idFromName', 'r%C3%A9'], ['fetch', 'id(r%C3%A9)', 'GET', `${BASE}/chat/r%C3%A9/stats?x=1`, null]]);
    // a wrong method is the object's to answer (its core says 405)
    seen.length = 0;
    await worker.fetch(new Request(`${BASE}/chat/abc/messages`, { method: 'PUT', body: 'x' }), fake);
    expect(seen).toEqual([['idFromName', 'abc'], ['fetch', 'id(abc)', 'PUT', `${BASE}/chat/abc/messages`, null]]);
  });

  it('a WebSocket route with durable: validated in the Worker, then upgradeDurable (its 4xx/502 rules)', async () => {
    const key = upgradeHeaders()['Sec-WebSocket-Key'];
    let { env: fake, seen } = fakeEnv(() => new Response('{"error":"nope"}', { status: 409 }));
    let res = await worker.fetch(new Request(`${BASE}/chat/k1?name=n`, { headers: upgradeHeaders() }), fake);
    expect(res.status).toBe(409);
    expect(await res.text()).toBe('{"error":"nope"}');
    expect(seen).toEqual([['idFromName', 'k1'], ['fetch', 'id(k1)', 'GET', `${BASE}/chat/k1?name=n`, key]]);
    ({ env: fake, seen } = fakeEnv());
    res = await worker.fetch(new Request(`${BASE}/chat/k2`, { headers: upgradeHeaders() }), fake);
    expect(res.status).toBe(502);
    expect(await json(res)).toEqual({ error: 'durable object did not accept the upgrade (status 200)' });
    // a bad handshake never reaches the namespace
    ({ env: fake, seen } = fakeEnv());
    res = await worker.fetch(new Request(`${BASE}/chat/k3`, { headers: upgradeHeaders({ 'Sec-WebSocket-Version': '12' }) }), fake);
    expect(res.status).toBe(426);
    expect(await json(res)).toEqual({ error: 'unsupported Sec-WebSocket-Version (expected 13)' });
    res = await worker.fetch(new Request(`${BASE}/chat/k3`), fake);
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'This endpoint requires a WebSocket upgrade' });
    expect(seen).toEqual([]);
  });

  it('a route without durable runs in the Worker; no route is the core 404; the namespace is untouched', async () => {
    const { env: fake, seen } = fakeEnv();
    const ws = await worker.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() }), fake);
    expect(ws.status).toBe(101);
    ws.webSocket.accept();
    ws.webSocket.close(1000);
    for (const p of ['/nope', '/chat/a/b/c', '/chat']) {
      const res = await worker.fetch(new Request(BASE + p), fake);
      expect(res.status, p).toBe(404);
      expect(await json(res)).toEqual({ error: 'not found' });
    }
    expect(seen).toEqual([]);
  });

  it("an upgrade on a durable HTTP route goes to the object, whose core has no such WebSocket route: 404", async () => {
    const res = await SELF.fetch(`${BASE}/chat/${room('up-http')}/stats`, { headers: upgradeHeaders() });
    expect(res.status).toBe(404);
    expect(res.webSocket).toBeNull();
    expect(await json(res)).toEqual({ error: 'not found' });
  });

  it('a route whose binding is missing from env -> 500 JSON naming it', async () => {
    for (const req of [new Request(`${BASE}/chat/x/stats`), new Request(`${BASE}/chat/x`, { headers: upgradeHeaders() })]) {
      const res = await worker.fetch(req, {});
      expect(res.status).toBe(500);
      expect(await json(res)).toEqual({ error: 'no Durable Object binding CHAT_ROOMS in env (wrangler.toml)' });
    }
  });
});

describe('the page option', () => {
  it('GET and HEAD / serve it (any query); other methods get the core answer', async () => {
    const get = await SELF.fetch(`${BASE}/?from=test`);
    expect(get.status).toBe(200);
    expect(get.headers.get('cache-control')).toBe('no-cache');
    const page = await get.text();
    expect(page).toMatch(/<html/i);
    const head = await SELF.fetch(`${BASE}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await head.text()).toBe('');
    const post = await SELF.fetch(`${BASE}/`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(404);
    expect(await json(post)).toEqual({ error: 'not found' });
    // an app without the option: GET / is the core's 404
    const bare = new WsedgeApp(wasmModule);
    const res = await bare.fetch(new Request(`${BASE}/`), env);
    expect(res.status).toBe(404);
    expect(await json(res)).toEqual({ error: 'not found' });
  });
});

describe('WsedgeApp options', () => {
  it('onFailedUpgrade sees every rejection of app.fetch and may replace it', async () => {
    const seen = [];
    const app = new WsedgeApp(wasmModule, {
      onFailedUpgrade: (f) => {
        seen.push([f.status, f.error]);
        if (f.status === 426) return new Response('upgrade your client', { status: 426, headers: { 'x-hook': '1' } });
      },
    });
    expect(app.instance).toBe(worker.instance); // one instance per module
    let res = await app.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders({ 'Sec-WebSocket-Version': '8' }) }), env);
    expect(res.status).toBe(426);
    expect(res.headers.get('x-hook')).toBe('1');
    expect(await res.text()).toBe('upgrade your client');
    res = await app.fetch(new Request(`${BASE}/chat/${room('hook')}`, { headers: upgradeHeaders({ Origin: 'https://evil.example' }) }), env);
    expect(res.status).toBe(403);
    expect(await json(res)).toEqual({ error: 'origin not allowed' });
    res = await app.fetch(new Request(`${BASE}/nope`), env);
    expect(res.status).toBe(404);
    expect(seen).toEqual([[426, 'unsupported Sec-WebSocket-Version (expected 13)'], [403, 'origin not allowed'], [404, 'not found']]);
  });

  it('a second app on the same module routes through its own Worker context, into the same rooms', async () => {
    const app = new WsedgeApp(wasmModule);
    const r = room('second');
    const [a] = await joinAll(r, ['a']);
    const res = await app.fetch(new Request(`${BASE}/chat/${r}/messages`, { method: 'POST', body: 'via the second app' }), env);
    expect(await json(res)).toEqual({ delivered: 1 });
    expect(JSON.parse(await a.next())).toMatchObject({ type: 'message', id: 'server', text: 'via the second app' });
    expect(await stats(r)).toMatchObject({ members: 1, sessions: 1 });
    expect(heapStats()).toEqual(worker.heapStats());
  });

  it('refuses anything but a compiled module (workerd compiles no wasm at run time)', () => {
    expect(() => new WsedgeApp(new Uint8Array(8))).toThrow(TypeError);
    expect(() => new WsedgeApp()).toThrow(/needs the compiled wasm module/);
  });
});
