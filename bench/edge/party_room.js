// bench/edge/party_room.js — the same room on PartyServer (npm partyserver),
// hibernating, as its README writes one: onMessage + this.broadcast(msg,
// [sender.id]) for binary, JSON to everyone for text.
import { Server } from "partyserver";

export class PartyRoom extends Server {
  static options = { hibernate: true };

  onMessage(connection, message) {
    if (typeof message === "string") {
      this.broadcast(JSON.stringify({ type: "message", text: message }));
      return;
    }
    this.broadcast(message, [connection.id]);
  }
}
