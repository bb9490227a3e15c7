// wsedge.d.ts — types of the Workers shim (bindings/workers/wsedge.js).
// The shim moves bytes between Workers APIs and the wasm core; routes,
// validation, sessions and the chat app live in C (wasm/).

// Workers globals (Request, WebSocket, DurableObjectState, DurableObjectStub)
// come from @cloudflare/workers-types or `wrangler types`.

/** Heartbeat text the runtime answers without waking a hibernated room. */
export declare const AUTO_PING: '{"type":"ping"}';
/** The runtime's answer to AUTO_PING. */
export declare const AUTO_PONG: '{"type":"pong"}';

/** Action tape types (see the layout comment at the top of wsedge.js). */
export declare const ACT_SEND: 1;
export declare const ACT_BROADCAST: 2;
export declare const ACT_CLOSE: 3;
export declare const ACT_ATTACH: 4;

/** Use another compiled module (e.g. build/wsedge-emcc.wasm) before first use. */
export declare function useModule(module: WebAssembly.Module): void;

/** Heap figures of this isolate's module. */
export declare function heapStats(): { used: number; size: number; memory: number };

/** What the core answered, for onFailedUpgrade. */
export interface FailedUpgrade {
  status: number;
  /** The message of the core's JSON body {"error": "..."}. */
  error: string | null;
  headers: [string, string][];
  request: Request;
}

export interface WebSocketContextConfig {
  /** Replace (return a Response) or observe (return nothing) a rejection. */
  onFailedUpgrade?(failure: FailedUpgrade): Response | void;
}

export declare class WebSocketContext {
  /**
   * Validate `request` with the core (no session is created): unknown path
   * -> 404 JSON; a plain request on a WebSocket route -> 400 JSON; a bad
   * handshake -> 400/403/405 (+ Allow: GET)/426 (+ Sec-WebSocket-Version: 13)
   * with the core's JSON body.
   */
  static fromRequest(request: Request, config?: WebSocketContextConfig): WebSocketContext;
  /** false when the core rejected the request. */
  readonly ok: boolean;
  /** The rejection to return when !ok, else null. */
  readonly response: Response | null;
  readonly request: Request;
  /** request.url parsed on first use (the shim itself slices request.url). */
  readonly url: URL;
  /**
   * Accept in this Worker: WebSocketPair + standard accept; the session lives
   * in the isolate's app context and the route's C handlers run for it
   * (e.g. /ws echo). Returns the 101 (or the app's rejection, e.g. from its
   * on_upgrade hook).
   */
  upgrade(): Response;
  /** upgradeDurable / upgradeDurableWith with this context's request. */
  upgradeDurable(stub: DurableObjectStub, init?: RequestInit): Promise<Response>;
}

/**
 * Forward the ORIGINAL request (URL, query, headers) to a Durable Object via
 * stub.fetch. Resolves to the object's 101 carrying the client WebSocket; a
 * 4xx from the object's core (e.g. the app refused a name) passes through;
 * anything else (no socket, 5xx, a thrown stub) becomes 502
 * {"error": "..."}.
 */
export declare function upgradeDurable(stub: DurableObjectStub, request: Request): Promise<Response>;

/** upgradeDurable with `init` applied: its headers are set over the original's. */
export declare function upgradeDurableWith(
  stub: DurableObjectStub,
  request: Request,
  init?: RequestInit,
): Promise<Response>;

/** One app context in wasm memory (the example app: /ws echo, /chat/:room). */
export declare class WsedgeApp {
  constructor();
  /** Add earlier instances' totals to the restore counters (lifetime stats). */
  seed(restores: number, restored: number): void;
  /** Lifetime restore passes (wakes) and restored sessions. */
  counters(): { wakes: number; restored: number };
  /** Free the context and all its sessions. */
  free(): void;
  /** Live sessions. */
  sessions(): number;
}

/** The isolate's Worker-side app context (used by WebSocketContext.upgrade). */
export declare function workerApp(): WsedgeApp;

export interface DurableSessionsOptions {
  /**
   * [request, response] texts the runtime answers without waking the object
   * (setWebSocketAutoResponse). Default [AUTO_PING, AUTO_PONG]; null: none.
   */
  autoResponse?: [string, string] | null;
}

/**
 * The Durable Object glue (Hibernation API only). Create it in the object's
 * constructor and forward the handlers:
 *
 *   export class ChatRoom extends DurableObject {
 *     constructor(ctx, env) { super(ctx, env); this.sessions = new DurableSessions(ctx); }
 *     fetch(req) { return this.sessions.fetch(req); }
 *     webSocketMessage(ws, m) { this.sessions.webSocketMessage(ws, m); }
 *     webSocketClose(ws, c, r, clean) { this.sessions.webSocketClose(ws, c, r, clean); }
 *     webSocketError(ws, e) { this.sessions.webSocketError(ws, e); }
 *   }
 *
 * Sessions are stored in socket attachments (the core's versioned,
 * checksummed encoding) and tagged with their session id; after a wake the
 * SessionMap is rebuilt once from getWebSockets() + deserializeAttachment()
 * and kept in wasm memory. A socket whose attachment is corrupt or foreign
 * is closed with 1011; the rest of the room is restored.
 */
export declare class DurableSessions {
  constructor(state: DurableObjectState, options?: DurableSessionsOptions);
  /** The room's app context (created on first use, again after a release). */
  readonly app: WsedgeApp;
  /** Upgrades (validated by the core; acceptWebSocket) and the app's HTTP routes. */
  fetch(request: Request): Promise<Response>;
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean?: boolean): void;
  webSocketError(ws: WebSocket, error?: unknown): void;
  /** Send to one session by its id from anywhere in the object. Returns 0 or a negative wse_err. */
  sendTo(sessionId: string, data: string | ArrayBuffer | ArrayBufferView): number;
  /**
   * Rebuild the SessionMap from attachments now (done lazily otherwise, on
   * the first event of an instance). Closing sockets that still carry a
   * session are restored too, so a close that wakes the object reaches the
   * core and the others get its leave; `event` is the socket whose event is
   * being handled (workerd leaves a socket whose Close it received out of
   * getWebSockets()). Each pass over >= 1 socket counts one wake; the
   * lifetime totals (wakes, restored sessions) are kept in the object's
   * storage (ctx.storage.kv, else SQL, else get/put) and reported by the
   * app's stats.
   */
  restore(event?: WebSocket): void;
  /**
   * Free the room's app context when it has no sessions (called after every
   * event; the next event starts a fresh context, lifetime counters kept).
   */
  release(): void;
}

/**
 * App contexts of Durable Objects held in this isolate's wasm memory. A
 * context lives while its room has sessions; one whose object was evicted
 * with members is freed when that object starts again here, or when the
 * runtime collects the old instance (FinalizationRegistry: compatibility
 * date >= 2025-05-05 or workerd's enable_weak_ref flag).
 */
export declare function durableContexts(): number;
