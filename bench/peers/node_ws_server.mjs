// node_ws_server.mjs — Node + npm `ws` peer for bench/: the idiomatic ws
// server (noServer + http upgrade). Usage: node node_ws_server.mjs PORT [deflate]
// With "deflate": perMessageDeflate on, threshold 64 B (wsedge's default; ws's
// own default of 1024 would leave the benchmark's 512 B messages uncompressed).
//   /ws          echo (text stays text, binary stays binary)
//   /chat/:room  room kept in a Set: binary relayed as-is to the other
//                members, text broadcast as JSON {"type":"message",...} to
//                every member incl. the sender.
// Plain `ws` as most users run it: no bufferutil/utf-8-validate addons.
import http from "node:http";
import { WebSocketServer, WebSocket } from "ws";

const port = Number(process.argv[2]);
const deflate = process.argv[3] === "deflate";
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node node_ws_server.mjs PORT");
  process.exit(2);
}

const rooms = new Map(); // room name -> Set<WebSocket>
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: deflate ? { threshold: 64 } : false, maxPayload: 16 * 1024 * 1024 });

const server = http.createServer((req, res) => {
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: "not found" }));
});

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://x");
  let room = null;
  if (url.pathname.startsWith("/chat/") && url.pathname.length > 6) room = decodeURIComponent(url.pathname.slice(6));
  else if (url.pathname !== "/ws") {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const name = url.searchParams.get("name") || "anonymous";
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (room === null) {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      return;
    }
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        for (const m of members) if (m !== ws && m.readyState === WebSocket.OPEN) m.send(data, { binary: true });
      } else {
        const out = JSON.stringify({ type: "message", name, text: data.toString() });
        for (const m of members) if (m.readyState === WebSocket.OPEN) m.send(out);
      }
    });
    ws.on("close", () => {
      members.delete(ws);
      if (members.size === 0) rooms.delete(room);
    });
  });
});

server.listen(port, "127.0.0.1", () => console.error(`node ws peer listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
