// bench/edge/worker.js — the edge benchmark's Worker: the product's Worker
// and ChatRoom unchanged, next to two reference rooms, routed by path prefix.
// Every room relays binary messages as-is to the other members, which is
// what bench/loadgen's broadcast scenario sends and verifies.
import product, { ChatRoom } from "../../worker/index.js";
import { routePartykitRequest } from "partyserver";
import { PlainRoom } from "./plain_room.js";
import { PartyRoom } from "./party_room.js";

export { ChatRoom, PlainRoom, PartyRoom };

const PLAIN = /^\/plain\/chat\/([^/]+)$/;

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (url.pathname.startsWith("/wsedge/")) {
      url.pathname = url.pathname.slice("/wsedge".length);
      return product.fetch(new Request(url, request), env, ctx);
    }
    const m = PLAIN.exec(url.pathname);
    if (m) return env.PLAIN_ROOMS.get(env.PLAIN_ROOMS.idFromName(m[1])).fetch(request);
    return (await routePartykitRequest(request, env)) || new Response("not found", { status: 404 });
  },
};
