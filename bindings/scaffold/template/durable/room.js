// durable/room.js — one room per Durable Object (the ROOMS binding in
// wrangler.toml). WsedgeRoom runs app.c inside the object on the WebSocket
// Hibernation API: sessions live in their sockets' attachments and are
// restored when the object wakes. Add alarm() or onRequest(request) (HTTP
// that app.c does not route) here if you need them.
import { WsedgeRoom } from 'wsedge';

export class Room extends WsedgeRoom {}
