// worker/index.js — the Worker entry: routes only. Validation, sessions and
// chat semantics are the C core's (bindings/workers/wsedge.js runs it).
//   GET /                      the chat page (the same page the native server serves)
//   /ws                        echo, accepted in this Worker
//   /chat/:room                upgrade forwarded to the room's Durable Object
//   POST /chat/:room/messages  server push into the room (answered by the object)
//   GET  /chat/:room/stats     members, restored sessions, wakes (the object)
//   anything else              the core's JSON answer (404, 400 for a plain
//                              request on a WebSocket route, 405/426/403...)
import { WebSocketContext } from '../bindings/workers/wsedge.js';
import page from './chat.html';

export { ChatRoom } from '../durable/chat_room.js';

const ROOM = /^\/chat\/([^/]+)(\/[^/]+)?$/;

function room(env, name) {
  return env.CHAT_ROOMS.get(env.CHAT_ROOMS.idFromName(name));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/' && (request.method === 'GET' || request.method === 'HEAD')) {
      return new Response(request.method === 'HEAD' ? null : page, {
        headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' },
      });
    }
    const m = ROOM.exec(url.pathname);
    // /chat/:room/<anything>: the room's object answers with its core's routes
    if (m && m[2]) return room(env, m[1]).fetch(request);
    const ctx = WebSocketContext.fromRequest(request);
    if (!ctx.ok) return ctx.response;
    if (m) return ctx.upgradeDurable(room(env, m[1]));
    return ctx.upgrade();
  },
};
