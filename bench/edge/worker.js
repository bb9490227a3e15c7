// bench/edge/worker.js — the edge benchmark's Worker: the product's Worker
// and ChatRoom unchanged (its routes as they are: /chat/:room), next to two
// reference rooms routed by path prefix (/plain/chat/:room, /parties/...).
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
    // The product's own routes, the request passed through untouched (no
    // prefix to strip: a copied Request would be work the other rooms skip).
    if (url.pathname.startsWith("/chat/")) return product.fetch(request, env, ctx);
    const m = PLAIN.exec(url.pathname);
    if (m) return env.PLAIN_ROOMS.get(env.PLAIN_ROOMS.idFromName(m[1])).fetch(request);
    return (await routePartykitRequest(request, env)) || new Response("not found", { status: 404 });
  },
};
