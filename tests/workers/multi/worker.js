// tests/workers/multi/worker.js — a Worker holding two wsedge apps built from
// two modules (tests/workers/multi.test.js drives it):
//   chat (the first constructed: the isolate's default) — /ws, /chat/:room
//        routed from its table to CHAT_ROOMS, served by Room (no body);
//   echo (build/examples/echo.wasm) — /ws, served in the Worker for host
//        echo.test, and inside EchoRoom objects (static app = echo) with its
//        own heartbeat pair (static options) and an onRequest hook.
import chatWasm from '../../../build/wsedge.wasm';
import echoWasm from '../../../build/examples/echo.wasm';
import { WsedgeApp, WsedgeRoom } from 'wsedge';

export const chat = new WsedgeApp(chatWasm);
export const echo = new WsedgeApp(echoWasm, { autoResponse: null });

// the chat app again with edge settings of its own (tests/workers/multi-limits.test.js)
export const short = new WsedgeApp(chatWasm, { config: { maxMessageSize: 64, sessionTimeout: 1 } });

export class Room extends WsedgeRoom {}

export class ShortRoom extends WsedgeRoom {
  static app = short;
}

export class EchoRoom extends WsedgeRoom {
  static app = echo;
  static options = { autoResponse: ['hb', 'hb-ack'] };

  onRequest(request) {
    if (new URL(request.url).pathname === '/hello') return Response.json({ hello: this.ctx.id.toString() });
    return super.onRequest(request);
  }
}

export default {
  fetch(request, env, ctx) {
    return new URL(request.url).hostname === 'echo.test' ? echo.fetch(request, env, ctx) : chat.fetch(request, env, ctx);
  },
};
