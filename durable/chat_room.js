// durable/chat_room.js — one chat room per Durable Object, on the
// WebSocket Hibernation API (ctx.acceptWebSocket, never ws.accept()).
// Everything the room does is the C core's chat app; DurableSessions (the
// shim) validates upgrades, stores each session in its socket's attachment,
// rebuilds the SessionMap once after a wake, and executes the core's actions.
// Heartbeats '{"type":"ping"}' are answered '{"type":"pong"}' by the runtime
// without waking the object (setWebSocketAutoResponse).
import { DurableObject } from 'cloudflare:workers';
import { DurableSessions } from '../bindings/workers/wsedge.js';

export class ChatRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sessions = new DurableSessions(ctx);
  }

  fetch(request) {
    return this.sessions.fetch(request);
  }

  webSocketMessage(ws, message) {
    this.sessions.webSocketMessage(ws, message);
  }

  webSocketClose(ws, code, reason, wasClean) {
    this.sessions.webSocketClose(ws, code, reason, wasClean);
  }

  webSocketError(ws, error) {
    this.sessions.webSocketError(ws, error);
  }
}
