// bench/edge/party_room.js — the same chat room on PartyServer (npm
// partyserver), hibernating, written as its README does: onConnect /
// onMessage / onClose with this.broadcast and connection state. It does the
// same application work as the wsedge ChatRoom (wasm/example/chat.c) and
// bench/edge/plain_room.js:
//   connect  {"type":"join","id","name","count"} to every member, joiner included
//   text     {"type":"message","id","name","text","ts"} to every member
//   binary   relayed as-is to the other members
//   close    {"type":"leave","id","name","count"} to the remaining members
//            (PartyServer answers the close handshake itself)
import { Server } from "partyserver";

// Instances made per object (as in plain_room.js): the wake benchmark's
// proof that the room hibernated. Not room work.
const BUILT = new Map();

export class PartyRoom extends Server {
  static options = { hibernate: true };

  constructor(ctx, env) {
    super(ctx, env);
    const id = ctx.id.toString();
    BUILT.set(id, (BUILT.get(id) || 0) + 1);
  }

  onRequest() {
    return Response.json({ built: BUILT.get(this.ctx.id.toString()) || 0 });
  }

  onConnect(connection, ctx) {
    const name = new URL(ctx.request.url).searchParams.get("name") || "guest-" + connection.id.slice(0, 6);
    connection.setState({ name });
    let count = 0;
    for (const _ of this.getConnections()) count++;
    this.broadcast(JSON.stringify({ type: "join", id: connection.id, name, count }));
  }

  onMessage(connection, message) {
    if (typeof message === "string") {
      const name = connection.state?.name;
      this.broadcast(JSON.stringify({ type: "message", id: connection.id, name, text: message, ts: Date.now() }));
      return;
    }
    this.broadcast(message, [connection.id]);
  }

  onClose(connection) {
    let count = 0;
    for (const c of this.getConnections()) if (c.id !== connection.id) count++;
    const leave = JSON.stringify({ type: "leave", id: connection.id, name: connection.state?.name, count });
    this.broadcast(leave, [connection.id]);
  }
}
