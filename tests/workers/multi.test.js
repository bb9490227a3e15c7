// Two wsedge apps from two modules in one Worker (tests/workers/multi/):
// the chat app (the default: Room, a WsedgeRoom with no body, serves its
// CHAT_ROOMS) and the echo example (build/examples/echo.wasm) in the Worker
// for host echo.test and inside EchoRoom objects (static app, static
// options, an onRequest hook), each through hibernation.
import { SELF, env, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect } from 'vitest';
import { chat, echo, Room, EchoRoom } from './multi/worker.js';
import { WsedgeApp, WsedgeRoom, WebSocketContext, heapStats, durableContexts } from '../../bindings/workers/wsedge.js';
import { BASE, Client, upgradeHeaders, json, room, stub, joinAll, stats } from './helpers.js';

const ECHO = 'http://echo.test';
const echoStub = (name) => env.ECHO_ROOMS.get(env.ECHO_ROOMS.idFromName(name));

async function open(res) {
  expect(res.status).toBe(101);
  expect(res.webSocket).toBeTruthy();
  return new Client(res.webSocket, res);
}

describe('two modules, two apps, one Worker', () => {
  it('one instance per module: apps of one module share it, different modules never do', () => {
    expect(chat.instance).not.toBe(echo.instance);
    expect(chat.module).not.toBe(echo.module);
    const again = new WsedgeApp(echo.module);
    expect(again.instance).toBe(echo.instance);
    expect(again.heapStats().memory).toBe(echo.heapStats().memory);
    // the first app constructed stays the isolate's default
    expect(heapStats()).toEqual(chat.heapStats());
    expect(WebSocketContext.fromRequest(new Request(`${BASE}/chat/x`, { headers: upgradeHeaders() })).ok).toBe(true);
    const viaEcho = WebSocketContext.fromRequest(new Request(`${BASE}/chat/x`, { headers: upgradeHeaders() }), { app: echo });
    expect(viaEcho.ok).toBe(false);
    expect(viaEcho.response.status).toBe(404);
  });

  it("each app routes from its own module's table", () => {
    expect(chat.route(`${BASE}/chat/r1`)).toMatchObject({ kind: 'websocket', pattern: '/chat/:room', durable: 'CHAT_ROOMS', key: 'r1' });
    expect(echo.route(`${BASE}/chat/r1`)).toMatchObject({ kind: 'none' });
    expect(echo.route(`${BASE}/chat/r1/stats`)).toMatchObject({ kind: 'none' });
    for (const app of [chat, echo]) expect(app.route(`${BASE}/ws?x=1`)).toEqual({ kind: 'websocket', index: 0, pattern: '/ws', durable: null, key: null });
  });

  it('the heartbeat pair is the C app\'s (wse_app_heartbeat): chat declares ping/pong, echo none; the core answers it in the Worker too', async () => {
    expect(chat.core.heartbeat()).toEqual(['{"type":"ping"}', '{"type":"pong"}']);
    expect(echo.core.heartbeat()).toBeNull();
    const heap = chat.heapStats().used;
    expect(chat.core.heartbeat()).toEqual(['{"type":"ping"}', '{"type":"pong"}']); // read once, kept
    expect(chat.heapStats().used).toBe(heap);
    const c = await open(await SELF.fetch(`${BASE}/ws`, { headers: upgradeHeaders() })); // chat's echo route, in the Worker
    c.send('{"type":"ping"}');
    expect(await c.next()).toBe('{"type":"pong"}');
    c.send('{"type":"ping"} ');
    expect(await c.next()).toBe('{"type":"ping"} '); // not the exact text: the app's echo
    c.ws.close(1000);
    await c.closeEvent();
  });

  it('echo in the Worker (host echo.test), on its own heap; its app has no /chat', async () => {
    const chatHeap = chat.heapStats().used;
    const c = await open(await SELF.fetch(`${ECHO}/ws`, { headers: upgradeHeaders() }));
    c.send('hello echo');
    expect(await c.next()).toBe('hello echo');
    c.send(new Uint8Array([1, 2, 3, 255]));
    expect(new Uint8Array(await c.next())).toEqual(new Uint8Array([1, 2, 3, 255]));
    c.send('{"type":"ping"}'); // no heartbeat pair in the Worker: echoed
    expect(await c.next()).toBe('{"type":"ping"}');
    expect(chat.heapStats().used).toBe(chatHeap);
    c.ws.close(4000, 'done');
    expect(await c.closeEvent()).toEqual({ code: 4000, reason: 'done' });
    let res = await SELF.fetch(`${ECHO}/chat/r1`, { headers: upgradeHeaders() });
    expect(res.status).toBe(404);
    expect(await json(res)).toEqual({ error: 'not found' });
    res = await SELF.fetch(`${ECHO}/`);
    expect(res.status).toBe(404); // no page option
    res = await SELF.fetch(`${ECHO}/ws`);
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'This endpoint requires a WebSocket upgrade' });
  });

  it('the default app in the same Worker: Room (no body) serves CHAT_ROOMS through evictions', async () => {
    expect(Object.getPrototypeOf(Room)).toBe(WsedgeRoom);
    expect(Object.getOwnPropertyNames(Room.prototype)).toEqual(['constructor']);
    const r = room('multi');
    const [a, b] = await joinAll(r, ['a', 'b']);
    expect(await runInDurableObject(stub(r), (obj) => [obj instanceof Room, obj.sessions.app === chat])).toEqual([true, true]);
    for (let i = 1; i <= 2; i++) {
      await evictDurableObject(stub(r));
      b.send(`m${i}`);
      for (const m of [a, b]) expect(JSON.parse(await m.next())).toMatchObject({ type: 'message', id: b.id, name: 'b', text: `m${i}` });
    }
    a.send('{"type":"ping"}'); // the default heartbeat pair
    expect(await a.next()).toBe('{"type":"pong"}');
    expect(await stats(r)).toEqual({ room: r, members: 2, sessions: 2, restored: 4, wakes: 2 });
    expect(a.closed).toBeNull();
    expect(b.closed).toBeNull();
  });
});

describe('EchoRoom: static app (the echo module), static options, onRequest', () => {
  it('echo sessions in an object survive evictions, restored by the echo module', async () => {
    const s = echoStub(room('echo-room'));
    const heaps = [chat.heapStats().used, echo.heapStats().used];
    const x = await open(await s.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() })));
    const y = await open(await s.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() })));
    // the room's context and sessions live in the echo module's memory
    expect(chat.heapStats().used).toBe(heaps[0]);
    expect(echo.heapStats().used).toBeGreaterThan(heaps[1]);
    x.send('before');
    expect(await x.next()).toBe('before');
    const before = await runInDurableObject(s, (obj, state) => ({
      app: obj.sessions.app === echo, room: obj instanceof EchoRoom, sockets: state.getWebSockets().length,
    }));
    expect(before).toEqual({ app: true, room: true, sockets: 2 });
    const contexts = durableContexts();
    await evictDurableObject(s);
    x.send('after one');
    expect(await x.next()).toBe('after one');
    await evictDurableObject(s);
    y.send(new Uint8Array([9, 8, 7]));
    expect(new Uint8Array(await y.next())).toEqual(new Uint8Array([9, 8, 7]));
    x.send('after two');
    expect(await x.next()).toBe('after two');
    expect(x.pending()).toBe(0);
    expect(y.pending()).toBe(0);
    const after = await runInDurableObject(s, (obj) => ({ ...obj.sessions.context.counters(), sessions: obj.sessions.context.sessions() }));
    expect(after).toEqual({ wakes: 2, restored: 4, sessions: 2 });
    // the evicted instances' contexts were replaced, not piled up
    expect(durableContexts()).toBe(contexts);
    x.ws.close(1000, 'bye');
    expect(await x.closeEvent()).toEqual({ code: 1000, reason: 'bye' });
    y.ws.close(1000);
    await y.closeEvent();
  });

  it("static options override the app's: the heartbeat pair is hb/hb-ack, not ping/pong", async () => {
    const s = echoStub(room('echo-hb'));
    const c = await open(await s.fetch(new Request(`${BASE}/ws`, { headers: upgradeHeaders() })));
    await evictDurableObject(s);
    c.send('hb');
    expect(await c.next()).toBe('hb-ack');
    c.send('{"type":"ping"}');
    expect(await c.next()).toBe('{"type":"ping"}'); // the echo app's answer
    const answered = await runInDurableObject(s, (_, state) =>
      state.getWebSockets().map((ws) => state.getWebSocketAutoResponseTimestamp(ws) instanceof Date));
    expect(answered).toEqual([true]);
  });

  it('onRequest answers paths outside the routes; super.onRequest is the core 404; routed paths never reach it', async () => {
    const name = room('echo-hook');
    const s = echoStub(name);
    let res = await s.fetch(`${BASE}/hello`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ hello: env.ECHO_ROOMS.idFromName(name).toString() });
    res = await s.fetch(`${BASE}/elsewhere`);
    expect(res.status).toBe(404);
    expect(await json(res)).toEqual({ error: 'not found' });
    res = await s.fetch(`${BASE}/ws`);
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: 'This endpoint requires a WebSocket upgrade' });
  });
});
