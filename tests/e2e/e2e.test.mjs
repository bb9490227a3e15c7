// One behaviour suite, both targets: starts `build/wsedge serve` and
// `wrangler dev` once (concurrently), runs scenarios.mjs against each, stops
// them. Every test name starts with [native] or [workers].
import { after, before } from 'node:test';
import { registerScenarios } from './scenarios.mjs';
import { startAll, stopAll, targets } from './targets.mjs';

before(() => startAll(targets));
after(() => stopAll(targets), { timeout: 30000 });

for (const t of targets) registerScenarios(t);
