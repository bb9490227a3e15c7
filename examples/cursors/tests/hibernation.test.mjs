// Hibernation at the edge needs what only @cloudflare/vitest-pool-workers
// can do (evict a Durable Object on demand), so this file runs that suite
// (tests/workers/hibernation.spec.js, in workerd) as one node:test case: the
// same `node --test examples/cursors/tests/` then covers it. The run is
// bounded; on a timeout its process group (started here) is killed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './targets.mjs';

const BOUND_MS = 180000;

test('[workers] positions survive Durable Object hibernation (vitest-pool-workers)', {
  skip: process.env.WSEDGE_TARGETS && !process.env.WSEDGE_TARGETS.split(',').includes('workers'),
  timeout: BOUND_MS + 15000,
}, async () => {
  const vitest = path.join(ROOT, 'node_modules/.bin/vitest');
  assert.ok(existsSync(vitest), `${vitest} is missing (npm ci)`);
  const child = spawn(vitest, ['run', '--config', 'examples/cursors/tests/workers/vitest.config.js'], {
    cwd: ROOT,
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  child.stderr.on('data', (c) => { out += c; });
  const killGroup = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', killGroup);
  const timer = setTimeout(killGroup, BOUND_MS);
  const [code, signal] = await new Promise((r) => child.on('exit', (c, s) => r([c, s])));
  clearTimeout(timer);
  killGroup(); // anything it left behind in its group
  process.removeListener('exit', killGroup);
  assert.equal(signal, null, `vitest killed (${signal}) after ${BOUND_MS / 1000} s:\n${out}`);
  assert.equal(code, 0, `vitest failed:\n${out}`);
  assert.match(out, /Tests\s+2 passed \(2\)/, out);
});
