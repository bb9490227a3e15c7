// Upgrade validation through the real Worker, and the /ws echo. SELF.fetch
// delivers the raw request, so the key/version rules are exercised here
// (wrangler dev's proxy re-issues upgrades with a fresh key and version 13).
import { SELF, env } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import wasmModule from '../../build/wsedge.wasm';
import worker from '../../worker/index.js';
import { WebSocketContext } from '../../bindings/workers/wsedge.js';
import { BASE, upgrade, upgradeHeaders, connect, json } from './helpers.js';

describe('wasm module', () => {
  it('is the build WSE_WASM names, importing nothing outside env', () => {
    const exports = WebAssembly.Module.exports(wasmModule).map((e) => e.name);
    const emcc = /emcc/.test(env.WSE_WASM);
    expect(exports.includes('_initialize')).toBe(emcc);
    expect(exports).toContain('memory');
    expect(WebAssembly.Module.imports(wasmModule).filter((i) => i.module !== 'env')).toEqual([]);
  });
});

describe('upgrade rejections (core decisions, exact status and body)', () => {
  it('bad Sec-WebSocket-Key -> 400', async () => {
    const res = await upgrade('/ws', { 'Sec-WebSocket-Key': 'not-base64-of-16' });
    expect(res.status).toBe(400);
    expect(res.webSocket).toBeNull();
    expect(await json(res)).toEqual({ error: 'Sec-WebSocket-Key must be base64 of 16 bytes' });
  });

  it('a key of 15 bytes -> 400', async () => {
    const res = await upgrade('/ws', { 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAA' });
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'Sec-WebSocket-Key must be base64 of 16 bytes' });
  });

  it('version 12 -> 426 with Sec-WebSocket-Version: 13', async () => {
    const res = await upgrade('/ws', { 'Sec-WebSocket-Version': '12' });
    expect(res.status).toBe(426);
    expect(res.headers.get('sec-websocket-version')).toBe('13');
    expect(await json(res)).toEqual({ error: 'unsupported Sec-WebSocket-Version (expected 13)' });
  });

  // workerd's own fetch() turns any request carrying Upgrade: websocket into
  // a GET, so SELF.fetch cannot deliver this one; the Worker's fetch handler
  // is called directly with the same env instead.
  it('POST -> 405 with Allow: GET', async () => {
    const req = new Request(BASE + '/ws', { method: 'POST', body: 'x', headers: upgradeHeaders() });
    const res = await worker.fetch(req, env);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
    expect(await json(res)).toEqual({ error: 'method not allowed (expected GET)' });
    const chat = await worker.fetch(new Request(BASE + '/chat/r405?name=a', { method: 'PUT', headers: upgradeHeaders() }), env);
    expect(chat.status).toBe(405);
    expect(chat.headers.get('allow')).toBe('GET');
  });

  it('Connection without the upgrade token -> 400', async () => {
    const res = await upgrade('/ws', { Connection: 'keep-alive' });
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'Connection header lacks the upgrade token' });
  });

  it('Connection: keep-alive, Upgrade (what browsers send) is accepted', async () => {
    const res = await upgrade('/ws', { Connection: 'keep-alive, Upgrade' });
    expect(res.status).toBe(101);
    res.webSocket.accept();
    res.webSocket.close(1000);
  });

  it('foreign Origin -> 403', async () => {
    const res = await upgrade('/ws', { Origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(await json(res)).toEqual({ error: 'origin not allowed' });
  });

  it('same-origin Origin is accepted', async () => {
    const res = await upgrade('/ws', { Origin: 'http://example.com' });
    expect(res.status).toBe(101);
    res.webSocket.accept();
    res.webSocket.close(1000);
  });

  it('unknown path -> 404 JSON', async () => {
    const res = await upgrade('/nope');
    expect(res.status).toBe(404);
    expect(await json(res)).toEqual({ error: 'not found' });
    const plain = await SELF.fetch(BASE + '/nope/deeper');
    expect(plain.status).toBe(404);
    expect(await json(plain)).toEqual({ error: 'not found' });
  });

  it('plain GET /ws -> 400 JSON', async () => {
    const res = await SELF.fetch(BASE + '/ws');
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'This endpoint requires a WebSocket upgrade' });
  });

  it('plain GET /chat/:room -> 400 JSON (answered in the Worker)', async () => {
    const res = await SELF.fetch(BASE + '/chat/plain-room');
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'This endpoint requires a WebSocket upgrade' });
  });

  it('chat upgrade with a bad key is rejected by the Worker before the object', async () => {
    const res = await upgrade('/chat/keyroom', { 'Sec-WebSocket-Key': 'short' });
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'Sec-WebSocket-Key must be base64 of 16 bytes' });
  });
});

describe('WebSocketContext.fromRequest', () => {
  it('accepts a valid upgrade without creating a session', () => {
    const ctx = WebSocketContext.fromRequest(new Request(BASE + '/chat/x?name=a', { headers: upgradeHeaders() }));
    expect(ctx.ok).toBe(true);
    expect(ctx.response).toBeNull();
  });

  it('onFailedUpgrade sees the core decision and may replace the response', async () => {
    let seen;
    const ctx = WebSocketContext.fromRequest(
      new Request(BASE + '/ws', { headers: upgradeHeaders({ 'Sec-WebSocket-Version': '8' }) }),
      { onFailedUpgrade: (f) => { seen = f; return new Response('custom', { status: f.status, headers: { 'x-hook': '1' } }); } },
    );
    expect(ctx.ok).toBe(false);
    expect(seen.status).toBe(426);
    expect(seen.error).toBe('unsupported Sec-WebSocket-Version (expected 13)');
    expect(seen.headers).toEqual([['Sec-WebSocket-Version', '13'], ['Upgrade', 'websocket'], ['Connection', 'Upgrade']]);
    expect(ctx.response.status).toBe(426);
    expect(ctx.response.headers.get('x-hook')).toBe('1');
    expect(await ctx.response.text()).toBe('custom');
    // observing only (no Response returned) keeps the core's answer
    const kept = WebSocketContext.fromRequest(new Request(BASE + '/nope'), { onFailedUpgrade: () => {} });
    expect(kept.response.status).toBe(404);
    expect(await json(kept.response)).toEqual({ error: 'not found' });
  });
});

describe('GET /', () => {
  it('serves the chat page', async () => {
    const res = await SELF.fetch(BASE + '/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toMatch(/<html/i);
  });
});

describe('/ws echo', () => {
  it('101 without runtime-owned extras, echoes text and binary unchanged', async () => {
    const c = await connect('/ws');
    expect(c.res.status).toBe(101);
    expect(c.res.headers.get('sec-websocket-protocol')).toBeNull();
    c.send('hello');
    expect(await c.next()).toBe('hello');
    const text = 'ünïcødé ✓ "quotes" \\ \u0001';
    c.send(text);
    expect(await c.next()).toBe(text);
    const bin = new Uint8Array(70000).map((_, i) => (i * 31) & 255);
    c.send(bin);
    const back = await c.next();
    expect(back).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(back)).toEqual(bin);
    c.send(new Uint8Array(0));
    expect(new Uint8Array(await c.next()).length).toBe(0);
    c.send('');
    expect(await c.next()).toBe('');
    c.ws.close(1000, 'bye');
    expect(await c.closeEvent()).toEqual({ code: 1000, reason: 'bye' });
  });

  it('answers a close without a code with a Close without a code (1005, as natively)', async () => {
    const c = await connect('/ws');
    c.ws.close();
    expect((await c.closeEvent()).code).toBe(1005);
  });

  it('echoes a client close code back (4001)', async () => {
    const c = await connect('/ws');
    c.ws.close(4001, 'custom');
    expect(await c.closeEvent()).toEqual({ code: 4001, reason: 'custom' });
  });

  it('100 echo sessions opened and closed leave the heap flat', async () => {
    const { heapStats } = await import('../../bindings/workers/wsedge.js');
    const cycle = async () => {
      const c = await connect('/ws');
      c.send('x');
      expect(await c.next()).toBe('x');
      c.ws.close(1000);
      await c.closeEvent();
    };
    for (let i = 0; i < 10; i++) await cycle();
    const before = heapStats().used;
    for (let i = 0; i < 100; i++) await cycle();
    expect(heapStats().used).toBe(before);
  });
});
