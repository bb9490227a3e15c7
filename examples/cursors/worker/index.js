// worker/index.js — the cursors example's Worker: nothing but wiring. The
// routes (/cursors/:board -> the CURSOR_BOARDS object named by :board), the
// handshake checks, the presence protocol and the hibernation state are the
// C app's (examples/cursors/cursors.c), compiled to wasm.
//   GET /              the page (public/index.html, the one `--static` serves natively)
//   /cursors/:board    WebSocket upgrade, forwarded to the board's Durable Object
//   anything else      the core's JSON answer (404, 400 for a plain GET on the route)
import wasm from '../../../build/examples/cursors.wasm';
import page from '../public/index.html';
import { WsedgeApp, WsedgeRoom } from 'wsedge';

// The app declares no heartbeat (its protocol has no text messages): a
// text message is closed with 1003 by the app, on both targets.
const app = new WsedgeApp(wasm, { page });

// One board per object; hibernation, attachments and wake-up restore are
// WsedgeRoom's (each session's last position is in its attachment).
export class CursorBoard extends WsedgeRoom {}

export default app;
