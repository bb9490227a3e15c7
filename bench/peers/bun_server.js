// bun_server.js — Bun (uWebSockets underneath) peer for bench/: the idiomatic
// Bun.serve WebSocket server. Usage: bun bun_server.js PORT [deflate]
// With "deflate": perMessageDeflate on and every send/publish compressed.
//   /ws          echo (text stays text, binary stays binary)
//   /chat/:room  room via Bun's pub/sub: binary relayed as-is to the other
//                members (ws.publish excludes the sender), text broadcast as
//                JSON {"type":"message",...} to every member incl. the sender.
const port = Number(process.argv[2]);
const deflate = process.argv[3] === "deflate";
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: bun bun_server.js PORT");
  process.exit(2);
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      if (server.upgrade(req, { data: { room: null, name: null } })) return;
      return Response.json({ error: "This endpoint requires a WebSocket upgrade" }, { status: 400 });
    }
    if (url.pathname.startsWith("/chat/") && url.pathname.length > 6) {
      const room = "room:" + decodeURIComponent(url.pathname.slice(6));
      const name = url.searchParams.get("name") || "anonymous";
      if (server.upgrade(req, { data: { room, name } })) return;
      return Response.json({ error: "This endpoint requires a WebSocket upgrade" }, { status: 400 });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    perMessageDeflate: deflate,
    open(ws) {
      if (ws.data.room) ws.subscribe(ws.data.room);
    },
    message(ws, msg) {
      const { room, name } = ws.data;
      if (!room) {
        ws.send(msg, deflate);
      } else if (typeof msg === "string") {
        server.publish(room, JSON.stringify({ type: "message", name, text: msg }), deflate);
      } else {
        ws.publish(room, msg, deflate);
      }
    },
    close(ws) {
      if (ws.data.room) ws.unsubscribe(ws.data.room);
    },
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
console.error(`bun peer listening on 127.0.0.1:${port}`);
