// bench/edge/plain_room.js — the chat room written the way Cloudflare's
// Durable Object WebSocket Hibernation docs write one (acceptWebSocket,
// serializeAttachment, broadcasting over ctx.getWebSockets()), doing the
// same application work as the wsedge ChatRoom (wasm/example/chat.c), so the
// edge benchmark compares like with like:
//   connect  {"type":"join","id","name","count"} to every member, joiner included
//   text     {"type":"message","id","name","text","ts"} to every member
//   binary   relayed as-is to the other members
//   close    {"type":"leave","id","name","count"} to the remaining members,
//            and the close handshake answered
// What it does not do and wsedge does: validate the handshake, room and
// name in the Worker and again in the object, escape/validate names, and
// accept {"text":..} / {"to":..} message forms.
import { DurableObject } from "cloudflare:workers";

// Instances made per object (module scope outlives an evicted instance):
// the wake benchmark's proof that the room hibernated. Not room work.
const BUILT = new Map();

export class PlainRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const id = ctx.id.toString();
    BUILT.set(id, (BUILT.get(id) || 0) + 1);
  }

  async fetch(request) {
    if (new URL(request.url).searchParams.has("built")) {
      return Response.json({ built: BUILT.get(this.ctx.id.toString()) || 0 });
    }
    if (request.headers.get("Upgrade") !== "websocket") {
      return new Response("Expected Upgrade: websocket", { status: 426 });
    }
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair);
    const id = crypto.randomUUID();
    const name = new URL(request.url).searchParams.get("name") || "guest-" + id.slice(0, 6);
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ id, name });
    const sockets = this.ctx.getWebSockets();
    const join = JSON.stringify({ type: "join", id, name, count: sockets.length });
    for (const ws of sockets) {
      try { ws.send(join); } catch { /* closing */ }
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    if (typeof message === "string") {
      const { id, name } = ws.deserializeAttachment();
      const out = JSON.stringify({ type: "message", id, name, text: message, ts: Date.now() });
      for (const peer of this.ctx.getWebSockets()) {
        try { peer.send(out); } catch { /* closing */ }
      }
      return;
    }
    for (const peer of this.ctx.getWebSockets()) {
      if (peer !== ws) {
        try { peer.send(message); } catch { /* closing */ }
      }
    }
  }

  async webSocketClose(ws, code, reason) {
    const { id, name } = ws.deserializeAttachment() || {};
    const others = this.ctx.getWebSockets().filter((peer) => peer !== ws);
    if (id) {
      const leave = JSON.stringify({ type: "leave", id, name, count: others.length });
      for (const peer of others) {
        try { peer.send(leave); } catch { /* closing */ }
      }
    }
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }
}
