// wsedge.d.ts — types of the Workers shim (bindings/workers/wsedge.js).
// The shim moves bytes between Workers APIs and the wasm core; routes (and
// where each runs), validation, sessions and the app live in C.

// Workers globals (Request, Response, WebSocket, DurableObjectState,
// DurableObjectStub, DurableObjectNamespace) and 'cloudflare:workers' come
// from @cloudflare/workers-types or `wrangler types`.
import { DurableObject } from 'cloudflare:workers';

/** Action tape types (see the layout comment at the top of wsedge.js). */
export declare const ACT_SEND: 1;
export declare const ACT_BROADCAST: 2;
export declare const ACT_CLOSE: 3;
export declare const ACT_ATTACH: 4;
export declare const ACT_TIMER: 5;
export declare const ACT_HISTORY: 6;

/** Heap figures of a module's instance: bytes in use, bytes managed, linear memory. */
export interface HeapStats {
  used: number;
  size: number;
  memory: number;
}

/** Heap figures of the isolate's default app's module (the first WsedgeApp constructed). */
export declare function heapStats(): HeapStats;

/** What the core answered, for onFailedUpgrade. */
export interface FailedUpgrade {
  status: number;
  /** The message of the core's JSON body {"error": "..."}. */
  error: string | null;
  headers: [string, string][];
  request: Request;
}

/** Where a request goes, from the app's own route table (wse_app_route_info). */
export interface RouteInfo {
  /** A WebSocket route wins over an HTTP route of the same path. */
  kind: 'websocket' | 'http' | 'none';
  /** The route's index in its table (WebSocket or HTTP), -1 for none. */
  index: number;
  pattern: string | null;
  /** The Durable Object namespace binding serving the route; null: the Worker. */
  durable: string | null;
  /** The object's name (idFromName), a slice of the path as sent; null without `durable`. */
  key: string | null;
}

export interface WsedgeAppOptions {
  /** HTML served for GET/HEAD / (any query) when no route of the app claims "/". */
  page?: string | ArrayBuffer | ArrayBufferView | ReadableStream;
  /** Replace (return a Response) or observe (return nothing) each rejection app.fetch answers. */
  onFailedUpgrade?(failure: FailedUpgrade): Response | void;
  /**
   * The rooms' heartbeat pair (setWebSocketAutoResponse) for WsedgeRooms of
   * this app; default: the pair the app's C entry point declared
   * (wse_app_heartbeat), none if it declared none; null: none.
   */
  autoResponse?: [string, string] | null;
  /**
   * The app's defaults at the edge (what the native server takes from its
   * flags); the Worker's wrangler vars WSEDGE_MAX_MESSAGE_SIZE,
   * WSEDGE_WEBSOCKET_TIMEOUT and WSEDGE_ALLOW_ORIGINS win over them. An
   * invalid value throws, naming its source.
   */
  config?: EdgeSettings;
}

export interface EdgeSettings {
  /** Bytes (number, or "64k"/"16m"/"1g"): a larger message closes with 1009 before it reaches the core. */
  maxMessageSize?: number | string;
  /** Seconds of a session's lifetime, then close 4000 "timeout" (0: none; default 3600). */
  sessionTimeout?: number | string;
  /** Allowed Origin values ("*" or scheme://host[:port]); default: same host or none. */
  allowOrigins?: string[] | string;
  /**
   * Milliseconds a room's history rows may wait to be stored together in one
   * SQLite commit (0..1000; default 10; 0: each row with its event). A room
   * object that dies inside the window loses those events, never a number.
   */
  historyFlushMs?: number | string;
}

/**
 * A wsedge app at the edge: its compiled module (a CompiledWasm import) and
 * the Worker's fetch handler. Each module is instantiated once per isolate
 * (apps of one module share its instance); a Worker may hold apps from
 * several modules. The first app constructed is the isolate's default
 * (WsedgeRoom, DurableSessions, WebSocketContext.fromRequest, heapStats).
 *
 *   import wasm from '../build/app.wasm';
 *   const app = new WsedgeApp(wasm, { page });
 *   export class Room extends WsedgeRoom {}
 *   export default app;
 */
export declare class WsedgeApp {
  constructor(module: WebAssembly.Module, options?: WsedgeAppOptions);
  readonly module: WebAssembly.Module;
  /** The module's instance in this isolate (shared by every app of the module). */
  readonly instance: WebAssembly.Instance;
  readonly options: WsedgeAppOptions;
  /** The settings in force: options.config with the env's WSEDGE_* vars over it. */
  readonly settings: { maxMessageSize?: number; sessionTimeout?: number; allowOrigins?: string[]; historyFlushMs?: number };
  /** Take env's WSEDGE_* vars (fetch and WsedgeRoom call it); contexts made afterwards use them. */
  useEnv(env: unknown): void;
  /**
   * Routes from the app's table: a route with `durable` goes to
   * env[durable].get(env[durable].idFromName(key)) — a WebSocket route is
   * validated in the Worker first, then upgradeDurable (4xx passes, else
   * 502); an HTTP route is forwarded as it is. A route without `durable`
   * runs in the Worker (WebSocket accepted here; HTTP answered by the core).
   * GET/HEAD / is options.page when set. Anything else: the core's 404 JSON.
   * A binding missing from env: 500 JSON naming it. Bound to the app.
   */
  fetch(request: Request, env?: unknown, ctx?: unknown): Response | Promise<Response>;
  /** Where `request` (or a URL) goes, from the app's table. */
  route(request: Request | string): RouteInfo;
  /** WebSocketContext.fromRequest with this app and options.onFailedUpgrade. */
  validate(request: Request): WebSocketContext;
  /** The Durable Object stub for route info `r`, or null when env lacks the binding. */
  stub(env: unknown, r: RouteInfo): DurableObjectStub | null;
  /** Heap figures of this app's module. */
  heapStats(): HeapStats;
  /** A fresh low-level context of this app (call free() when done). */
  context(): WsedgeContext;
}

export interface WebSocketContextConfig {
  /** The app whose core validates (default: the isolate's default app). */
  app?: WsedgeApp;
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
   * in the app's Worker-side context and the route's C handlers run for it
   * (e.g. /ws echo). Returns the 101 (or the app's rejection, e.g. from its
   * on_upgrade hook).
   */
  upgrade(): Response;
  /** upgradeDurable / upgradeDurableWith with this context's request. */
  upgradeDurable(stub: DurableObjectStub, init?: RequestInit): Response | Promise<Response>;
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

/** One app context in wasm memory: an app (its routes) with its sessions. */
export declare class WsedgeContext {
  private constructor();
  /** Where origin-form `target` (path and query) goes, from the app's table. */
  route(target: string): RouteInfo;
  /** Add earlier instances' totals to the restore counters (lifetime stats). */
  seed(restores: number, restored: number): void;
  /** Lifetime restore passes (wakes) and restored sessions. */
  counters(): { wakes: number; restored: number };
  /** Free the context and all its sessions. */
  free(): void;
  /** Live sessions. */
  sessions(): number;
  /** Run the app's due timers (queue their actions); returns how many ran. */
  runTimers(): number;
  /** When the app's earliest timer is due (ms since the epoch; 0: none). */
  timerNext(): number;
  /** Re-create a timer from a stored record (a TIMER action's); 0 or a negative error. */
  loadTimer(record: Uint8Array): number;
  /** Re-create a history entry from a stored record (a HISTORY action's); 0 or a negative error. */
  loadHistory(record: Uint8Array): number;
}

export interface DurableSessionsOptions {
  /** The app whose core serves the object (default: the isolate's default app). */
  app?: WsedgeApp;
  /**
   * [request, response] texts the runtime answers without waking the object
   * (setWebSocketAutoResponse). Default: the app's option, else the pair
   * its C entry point declared (wse_app_heartbeat); null: none.
   */
  autoResponse?: [string, string] | null;
}

/**
 * The Durable Object glue (Hibernation API only) WsedgeRoom is built on; a
 * class that cannot extend WsedgeRoom creates it in its constructor and
 * forwards the handlers:
 *
 *   export class ChatRoom extends DurableObject {
 *     constructor(ctx, env) { super(ctx, env); this.sessions = new DurableSessions(ctx, { app }); }
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
  /** The app serving this object. */
  readonly app: WsedgeApp;
  /** The room's app context (created on first use, again after a release). */
  readonly context: WsedgeContext;
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
   * Inside a history write window the context is kept until the window
   * ends (at most 2 x historyFlushMs).
   */
  release(): void;
  /**
   * Store the room's queued history rows now, in one commit (rows are
   * written behind, at most historyFlushMs after their events), e.g. before
   * the object aborts itself. false: the storage refused (rows dropped,
   * numbering goes on above them).
   */
  flushHistory(): boolean;
}

/**
 * A Durable Object class serving an app's durable routes (Hibernation API):
 * `export class Room extends WsedgeRoom {}` is complete — bind it in
 * wrangler.toml under the name the C route's `durable` declares.
 *
 *   export class Board extends WsedgeRoom {
 *     static app = boards;                        // not the isolate's default app
 *     static options = { autoResponse: null };    // DurableSessions options
 *     onRequest(request) { ... }                  // paths outside the app's routes
 *   }
 */
export declare class WsedgeRoom<Env = unknown> extends DurableObject<Env> {
  /** The app this class serves (default: the isolate's default app). */
  static app?: WsedgeApp;
  /** DurableSessions options (autoResponse) over the app's. */
  static options?: Omit<DurableSessionsOptions, 'app'>;
  constructor(ctx: DurableObjectState, env: Env);
  /** The hibernation plumbing; sessions.sendTo(id, data) reaches a member. */
  readonly sessions: DurableSessions;
  /** Upgrades and HTTP routes by the core; other paths go to onRequest. */
  fetch(request: Request): Response | Promise<Response>;
  /**
   * A request whose path matches none of the app's routes (default: the
   * core's 404 JSON). Only a class that overrides it pays for the route lookup.
   */
  onRequest(request: Request): Response | Promise<Response>;
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): void;
  webSocketError(ws: WebSocket, error: unknown): void;
  /**
   * The object's alarm: sessions past their lifetime are closed with 4000
   * "timeout", the app's due timers run (wse_timer_set; kept in the
   * object's SQLite storage, table wsedge_timers) and the alarm is set for
   * what comes next. A subclass with alarms of its own calls super.alarm()
   * from its alarm().
   */
  alarm(): void | Promise<void>;
}

/**
 * App contexts of Durable Objects held in this isolate's wasm memories. A
 * context lives while its room has sessions; one whose object was evicted
 * with members is freed when that object starts again here, or when the
 * runtime collects the old instance (FinalizationRegistry: compatibility
 * date >= 2025-05-05 or workerd's enable_weak_ref flag).
 */
export declare function durableContexts(): number;
