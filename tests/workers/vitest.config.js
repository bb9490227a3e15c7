// Vitest inside workerd (@cloudflare/vitest-pool-workers 0.23). The Worker
// under test is the real one (wrangler.toml: worker/index.js + ChatRoom);
// WSE_WASM picks which wasm build it loads (default build/wsedge.wasm;
// `make test-workers` runs the suite once per build).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const wasm = path.resolve(root, process.env.WSE_WASM || 'build/wsedge.wasm');
if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run make wasm (or make wasm-emscripten)`);
console.log(`wsedge workers tests: ${path.relative(root, wasm)}`);

export default defineConfig({
  root,
  resolve: {
    // the shim imports ../../build/wsedge.wasm; point it at the chosen build
    alias: [{ find: /^.*\/build\/wsedge\.wasm$/, replacement: wasm }],
  },
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: { bindings: { WSE_WASM: path.relative(root, wasm) } },
    }),
  ],
  test: {
    include: ['tests/workers/**/*.test.js'],
    testTimeout: 20000,
    hookTimeout: 20000,
  },
});
