// worker/index.js — the Worker of the repository's example app (examples/chat:
// /ws echo + chat rooms), and nothing but wiring: the routes, where each runs
// (the C route's `durable` binding and key), validation, sessions and chat
// semantics are the app's, compiled to build/wsedge.wasm (`make wasm`).
//   GET /                      the chat page (the same page the native server serves)
//   /ws                        echo, accepted in this Worker (no `durable`)
//   /chat/:room                upgrade validated here, then forwarded to
//                              CHAT_ROOMS.idFromName(room)
//   POST /chat/:room/messages  server push into the room (answered by the object)
//   GET  /chat/:room/stats     members, restored sessions, wakes (the object)
//   anything else              the core's JSON answer (404, 400 for a plain
//                              request on a WebSocket route, 405/426/403...)
import wasm from '../build/wsedge.wasm';
import page from './chat.html';
import { WsedgeApp } from 'wsedge';

// the first app constructed is the isolate's default: ChatRoom serves it
const app = new WsedgeApp(wasm, { page });

export { ChatRoom } from '../durable/chat_room.js';

export default app;
