// The two targets of the end-to-end suite, from the generic harness
// (bindings/workers/testing.mjs, published as `wsedge/testing`): the native
// server (`build/wsedge serve`) and the repository's Worker under
// `wrangler dev`, each on a free 127.0.0.1 port in its own process group,
// stopped by killing exactly that group (SIGTERM, then SIGKILL after a
// bound) — never by name.
//
// Overrides (development only): WSE_E2E_NATIVE_BIN (default build/wsedge),
// WSE_E2E_WRANGLER_CONFIG (default: the repository's wrangler.toml),
// WSE_E2E_START_TIMEOUT_MS (default 60000 for workers, 15000 for native),
// WSE_E2E_TARGETS=native|workers to run one target while debugging.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, nativeTarget, selectTargets, startAll, stopAll, workersTarget } from '../../bindings/workers/testing.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export { freePort, startAll, stopAll };

const timeout = Number(process.env.WSE_E2E_START_TIMEOUT_MS) || 0;

const native = nativeTarget({
  bin: path.resolve(ROOT, process.env.WSE_E2E_NATIVE_BIN || 'build/wsedge'),
  args: ['serve', '--listen', '127.0.0.1:{port}', '--threads', '2'],
  cwd: ROOT,
  healthPath: '/healthz',
  timeoutMs: timeout || 15000,
});

const workers = workersTarget({
  cwd: ROOT,
  config: process.env.WSE_E2E_WRANGLER_CONFIG || undefined,
  healthPath: '/',
  timeoutMs: timeout || 60000,
});

/** Both targets, in the order their suites run. */
export const targets = selectTargets([native, workers], process.env.WSE_E2E_TARGETS);
