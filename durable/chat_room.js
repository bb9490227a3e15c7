// durable/chat_room.js — one chat room per Durable Object (CHAT_ROOMS, named
// by :room, as the C route declares), on the WebSocket Hibernation API.
// Everything the room does is the C app's; WsedgeRoom (the shim) validates
// upgrades, stores each session in its socket's attachment, rebuilds the
// SessionMap once after a wake, and executes the core's actions. The heartbeat
// pair the C app declares (wse_app_heartbeat: '{"type":"ping"}' ->
// '{"type":"pong"}') is answered by the runtime without waking the object
// (setWebSocketAutoResponse).
import { WsedgeRoom } from 'wsedge';

export class ChatRoom extends WsedgeRoom {}
