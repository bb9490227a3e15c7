// Types of wsedge/testing (testing.mjs): the Node-side harness that runs one
// scenario file against both targets — the native program and the Worker
// under `wrangler dev` — each on a free 127.0.0.1 port, stopped by killing
// exactly its process group.

export interface NativeTargetOptions {
  /** The program (resolved against cwd), e.g. 'build/myapp'. */
  bin: string;
  /** Default ['serve', '--listen', '127.0.0.1:{port}']; "{port}" is replaced by the chosen port. */
  args?: string[] | ((port: number) => string[]);
  /** Added to this process's environment ("{port}" replaced too). */
  env?: Record<string, string>;
  cwd?: string;
  /** Ready when GET healthPath answers healthStatus (default '/healthz', 200). */
  healthPath?: string;
  healthStatus?: number;
  /** Default 15000 (WSEDGE_START_TIMEOUT_MS overrides). */
  timeoutMs?: number;
  /** Default 'native'. */
  name?: string;
}

export interface WorkersTargetOptions {
  /** The project directory (default process.cwd()). */
  cwd?: string;
  /** A wrangler config (default: cwd's wrangler.toml/.json/.jsonc). */
  config?: string;
  /** More `wrangler dev` arguments. */
  args?: string[];
  env?: Record<string, string>;
  /** Ready when GET healthPath answers healthStatus (default '/', 200). */
  healthPath?: string;
  healthStatus?: number;
  /** Default 60000. */
  timeoutMs?: number;
  /** Default 'workers'. */
  name?: string;
}

export declare class Target {
  readonly name: string;
  /** Once started. */
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly baseUrl: string;
  /** ws://127.0.0.1:PORT */
  readonly wsUrl: string;
  /** { code, signal } once it exited, else null. */
  readonly exit: { code: number | null; signal: string | null } | null;
  /** Its last output lines. */
  readonly tail: string[];
  url(path?: string): string;
  /** Starts once; later calls return the same promise. */
  start(): Promise<Target>;
  stop(): Promise<void>;
}

export declare function freePort(): Promise<number>;
export declare function nativeTarget(o: NativeTargetOptions): Target;
export declare function workersTarget(o?: WorkersTargetOptions): Target;
export declare function startNative(o: NativeTargetOptions): Promise<Target>;
export declare function startWorkers(o?: WorkersTargetOptions): Promise<Target>;
/** Keep the targets named in $WSEDGE_TARGETS (all when unset). */
export declare function selectTargets(list: Target[], only?: string): Target[];
/** The targets (native first), not started yet. */
export declare function targets(o?: { native?: NativeTargetOptions; workers?: WorkersTargetOptions }): Target[];
export declare function startAll(list: Target[]): void;
export declare function stopAll(list: Target[]): Promise<void>;
/**
 * Run one scenario on both targets with node:test: describe(`[name]`) per
 * target, scenario(target) inside it; every target stopped after the file.
 */
export declare function bothTargets(
  o: { native?: NativeTargetOptions; workers?: WorkersTargetOptions },
  scenario: (target: Target) => void,
): Target[];
/** playwright-core launch options for the system's headless Chromium (WSEDGE_CHROMIUM overrides the path). */
export declare function chromiumLaunchOptions(extra?: Record<string, unknown>): {
  executablePath: string; headless: boolean; args: string[]; timeout: number; [k: string]: unknown;
};
