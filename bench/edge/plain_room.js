// bench/edge/plain_room.js — a chat room the way Cloudflare's Durable Object
// WebSocket Hibernation docs write one: acceptWebSocket, then
// webSocketMessage broadcasting over ctx.getWebSockets(). The reference for
// "plain JS" in the edge benchmark.
import { DurableObject } from "cloudflare:workers";

export class PlainRoom extends DurableObject {
  async fetch(request) {
    if (request.headers.get("Upgrade") !== "websocket") {
      return new Response("Expected Upgrade: websocket", { status: 426 });
    }
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair);
    const name = new URL(request.url).searchParams.get("name") || "anonymous";
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ name });
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    if (typeof message === "string") {
      const { name } = ws.deserializeAttachment();
      const out = JSON.stringify({ type: "message", name, text: message });
      for (const peer of this.ctx.getWebSockets()) peer.send(out);
      return;
    }
    for (const peer of this.ctx.getWebSockets()) if (peer !== ws) peer.send(message);
  }

  async webSocketClose(ws, code, reason) {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }
}
