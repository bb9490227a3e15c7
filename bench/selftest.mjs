// bench/selftest.mjs — proves bench/loadgen catches what it claims to catch:
// each case runs loadgen (1 s) against a deliberately broken server and
// expects a failed run with the right error counter; a correct server must
// pass. Run by hand after changing loadgen.c: `node bench/selftest.mjs`.
// Not part of `make test` (it is a check of the benchmark tool).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocketServer, WebSocket } from "ws";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LOADGEN = path.join(ROOT, "build/bench/loadgen");

function listen(server) {
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r(server.address().port)));
}

// A ws server whose per-connection behaviour is `onConn(ws, room)`.
async function wsServer(onConn, perMessageDeflate = false) {
  const rooms = new Map();
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate });
  wss.on("connection", (ws, req) => {
    const room = req.url.startsWith("/chat/") ? req.url.split("?")[0] : null;
    if (room) {
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      ws.on("close", () => rooms.get(room).delete(ws));
    }
    onConn(ws, room ? rooms.get(room) : null);
  });
  const port = await listen(server);
  return { port, close: () => { for (const c of wss.clients) c.terminate(); server.close(); } };
}

function runLoadgen(args) {
  return new Promise((resolve) => {
    const child = spawn(LOADGEN, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", () => {});
    const t = setTimeout(() => child.kill("SIGKILL"), 30000);
    child.on("exit", (code) => {
      clearTimeout(t);
      try { resolve({ code, ...JSON.parse(out.trim().split("\n").pop()) }); } catch { resolve({ code, ok: false, error: "no JSON" }); }
    });
  });
}

const relayOthers = (ws, members) => ws.on("message", (d, bin) => {
  for (const m of members) if (m !== ws && m.readyState === WebSocket.OPEN) m.send(d, { binary: bin });
});

const cases = [
  {
    name: "correct echo passes", expect: "ok",
    server: () => wsServer((ws) => ws.on("message", (d, bin) => ws.send(d, { binary: bin }))),
    args: (p) => ["echo", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "4"],
  },
  {
    name: "correct text echo passes", expect: "ok",
    server: () => wsServer((ws) => ws.on("message", (d, bin) => ws.send(d, { binary: bin }))),
    args: (p) => ["echo", "--text", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "4", "--size", "300"],
  },
  {
    name: "correct broadcast passes", expect: "ok",
    server: () => wsServer(relayOthers),
    args: (p) => ["broadcast", "--url", `ws://127.0.0.1:${p}/chat/x`, "--conns", "20", "--settle", "0.2"],
  },
  {
    name: "correct connect passes", expect: "ok",
    server: () => wsServer(() => {}),
    args: (p) => ["connect", "--url", `ws://127.0.0.1:${p}/ws`, "--concurrency", "5"],
  },
  {
    name: "compressed echo passes (ws, context takeover)", expect: "ok",
    server: () => wsServer((ws) => ws.on("message", (d, bin) => ws.send(d, { binary: bin })), { threshold: 0 }),
    args: (p) => ["echo", "--deflate", "--text", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "4", "--size", "1024", "--inflight", "4"],
  },
  {
    name: "compressed broadcast passes", expect: "ok",
    server: () => wsServer(relayOthers, { threshold: 0 }),
    args: (p) => ["broadcast", "--deflate", "--url", `ws://127.0.0.1:${p}/chat/x`, "--conns", "10", "--size", "512", "--settle", "0.2"],
  },
  {
    name: "a declined permessage-deflate offer fails the run", expect: "deflate",
    server: () => wsServer((ws) => ws.on("message", (d, bin) => ws.send(d, { binary: bin }))),
    args: (p) => ["echo", "--deflate", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
  {
    name: "a permessage-deflate parameter we did not offer is refused", expect: "deflate",
    server: async () => {
      const s = net.createServer((sock) => sock.once("data", (d) => {
        const key = /sec-websocket-key:\s*(\S+)/i.exec(d.toString())[1];
        const acc = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
        sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${acc}\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n`);
      }));
      const port = await listen(s);
      return { port, close: () => s.close() };
    },
    args: (p) => ["echo", "--deflate", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
  {
    name: "wrong Sec-WebSocket-Accept is refused", expect: "handshake",
    server: async () => {
      const s = net.createServer((sock) => sock.once("data", () => sock.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${crypto.createHash("sha1").update("wrong").digest("base64")}\r\n\r\n`)));
      const port = await listen(s);
      return { port, close: () => s.close() };
    },
    args: (p) => ["echo", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
  {
    name: "corrupted echo payload is caught", expect: "verify",
    server: () => wsServer((ws) => {
      let n = 0;
      ws.on("message", (d, bin) => { if (++n === 500) d[d.length - 1] ^= 1; ws.send(d, { binary: bin }); });
    }),
    args: (p) => ["echo", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
  {
    name: "reordered echo is caught", expect: "verify",
    server: () => wsServer((ws) => {
      let n = 0, held = null;
      ws.on("message", (d, bin) => {
        n++;
        if (n === 300) { held = d; return; }
        ws.send(d, { binary: bin });
        if (held) { ws.send(held, { binary: bin }); held = null; }
      });
    }),
    args: (p) => ["echo", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
  {
    name: "broadcast that includes the sender is caught", expect: "self",
    server: () => wsServer((ws, members) => ws.on("message", (d, bin) => {
      for (const m of members) if (m.readyState === WebSocket.OPEN) m.send(d, { binary: bin });
    })),
    args: (p) => ["broadcast", "--url", `ws://127.0.0.1:${p}/chat/x`, "--conns", "10", "--settle", "0.2"],
  },
  {
    name: "a dropped broadcast message is caught", expect: "order",
    server: () => wsServer((ws, members) => {
      let n = 0;
      ws.on("message", (d, bin) => {
        const drop = ++n === 200;
        let first = true;
        for (const m of members) {
          if (m === ws || m.readyState !== WebSocket.OPEN) continue;
          if (drop && first) { first = false; continue; }
          m.send(d, { binary: bin });
        }
      });
    }),
    args: (p) => ["broadcast", "--url", `ws://127.0.0.1:${p}/chat/x`, "--conns", "10", "--settle", "0.2"],
  },
  {
    name: "a server closing mid-run fails the run", expect: "lost",
    server: () => wsServer((ws) => {
      ws.on("message", (d, bin) => ws.send(d, { binary: bin }));
      setTimeout(() => ws.close(1011, "bye"), 700);
    }),
    args: (p) => ["echo", "--url", `ws://127.0.0.1:${p}/ws`, "--conns", "2"],
  },
];

let pass = 0, fail = 0;
for (const c of cases) {
  const srv = await c.server();
  const r = await runLoadgen([...c.args(srv.port), "--duration", "1", "--warmup", "0.2"]);
  srv.close();
  const good = c.expect === "ok" ? r.ok === true && r.code === 0 && r.value > 0
    : r.ok === false && r.code === 1 && (r.errors?.[c.expect] ?? 0) > 0;
  if (good) pass++; else fail++;
  console.log(`${good ? "ok  " : "FAIL"} ${c.name}${good ? "" : `: ${JSON.stringify({ code: r.code, ok: r.ok, error: r.error, errors: r.errors })}`}`);
}
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
