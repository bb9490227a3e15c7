// Vitest inside workerd (@cloudflare/vitest-pool-workers 0.23), two projects:
//   main   the real Worker (wrangler.toml: worker/index.js + ChatRoom);
//   multi  a test-only Worker holding two apps from two modules
//          (tests/workers/multi/: the chat app and build/examples/echo.wasm).
// WSE_WASM picks which build of the chat app both load (default
// build/wsedge.wasm; `make test-workers` runs the suite once per build).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const wasm = path.resolve(root, process.env.WSE_WASM || 'build/wsedge.wasm');
if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run make wasm (or make wasm-emscripten)`);
const echo = path.resolve(root, 'build/examples/echo.wasm');
if (!existsSync(echo)) throw new Error(`${echo} is missing: run make build/examples/echo.wasm`);
console.log(`wsedge workers tests: ${path.relative(root, wasm)}`);

const bindings = { WSE_WASM: path.relative(root, wasm) };

export default defineConfig({
  root,
  resolve: {
    // worker/index.js imports ../build/wsedge.wasm: point it at the chosen
    // build; `wsedge` is the package in bindings/workers (as wrangler.toml's alias)
    alias: [
      { find: /^.*\/build\/wsedge\.wasm$/, replacement: wasm },
      { find: /^wsedge$/, replacement: path.resolve(root, 'bindings/workers/wsedge.js') },
    ],
  },
  test: {
    testTimeout: 20000,
    hookTimeout: 20000,
    projects: [
      {
        extends: true,
        plugins: [cloudflareTest({ wrangler: { configPath: './wrangler.toml' }, miniflare: { bindings } })],
        test: { name: 'main', include: ['tests/workers/*.test.js'], exclude: ['tests/workers/multi*.test.js'] },
      },
      {
        extends: true,
        plugins: [cloudflareTest({ wrangler: { configPath: './tests/workers/multi/wrangler.toml' }, miniflare: { bindings } })],
        test: { name: 'multi', include: ['tests/workers/multi*.test.js'] },
      },
    ],
  },
});
