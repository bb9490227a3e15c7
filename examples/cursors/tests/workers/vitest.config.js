// Vitest inside workerd (@cloudflare/vitest-pool-workers) for the cursors
// example's Worker: examples/cursors/wrangler.toml, worker/index.js and
// build/examples/cursors.wasm, as `wrangler dev` runs them, plus what only
// the pool can do: evict a board's Durable Object (hibernation) at will.
// Run: npx vitest run --config examples/cursors/tests/workers/vitest.config.js
// (examples/cursors/tests/hibernation.test.mjs does, under node --test).
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../../..');
const wasm = path.join(root, 'build/examples/cursors.wasm');
if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run make build/examples/cursors.wasm`);

export default defineConfig({
  root,
  resolve: {
    // wrangler.toml's [alias]: `wsedge` is the shim in this repository
    alias: [{ find: /^wsedge$/, replacement: path.join(root, 'bindings/workers/wsedge.js') }],
  },
  plugins: [cloudflareTest({ wrangler: { configPath: path.join(root, 'examples/cursors/wrangler.toml') } })],
  test: {
    include: ['examples/cursors/tests/workers/**/*.spec.js'],
    testTimeout: 20000,
    hookTimeout: 20000,
  },
});
