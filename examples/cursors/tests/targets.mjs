// The cursors example on both targets, from the generic harness
// (bindings/workers/testing.mjs, `wsedge/testing`): the native program
// build/examples/cursors with its page from --static, and its Worker under
// `wrangler dev` (examples/cursors/wrangler.toml). WSEDGE_TARGETS=native (or
// workers) runs one.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAll, stopAll, targets as both } from '../../../bindings/workers/testing.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export { startAll, stopAll };

export const targets = both({
  native: {
    bin: 'build/examples/cursors',
    args: ['serve', '--listen', '127.0.0.1:{port}', '--threads', '2', '--static', 'examples/cursors/public'],
    cwd: ROOT,
  },
  workers: { cwd: path.join(ROOT, 'examples/cursors') },
});
