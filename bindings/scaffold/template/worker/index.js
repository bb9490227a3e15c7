// worker/index.js — the Worker: nothing but wiring. Routes (and which
// Durable Object serves each), handshake checks and the rooms are app.c's,
// compiled to build/@NAME@.wasm (`make wasm`).
//   GET /          public/index.html (natively: `--static public`)
//   /room/:name    WebSocket upgrade, forwarded to the ROOMS object :name
//   anything else  the app's answer (its HTTP routes, else 404 JSON)
import wasm from '../build/@NAME@.wasm';
import page from '../public/index.html';
import { WsedgeApp } from 'wsedge';

const app = new WsedgeApp(wasm, { page });

export { Room } from '../durable/room.js';
export default app;
