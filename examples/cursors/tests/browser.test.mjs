// The cursors page (GET /) in headless Chromium against both targets: one
// page moves its pointer, the other shows that cursor where it was; a late
// page sees everyone at once; a page that goes away takes its cursor along.
// Drives the system Chromium (/usr/bin/chromium) through playwright-core;
// never downloads a browser. Screenshots: build/e2e/cursors-<target>.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { chromiumLaunchOptions } from '../../../bindings/workers/testing.mjs';
import { ROOT, startAll, stopAll, targets } from './targets.mjs';

const SHOTS = path.join(ROOT, 'build/e2e');
const WAIT_MS = 10000;
const VIEW = { width: 800, height: 600 };


let browser;
before(async () => {
  startAll(targets);
  browser = await chromium.launch(chromiumLaunchOptions());
}, { timeout: 60000 });
after(async () => {
  if (browser) await browser.close();
  await stopAll(targets);
}, { timeout: 30000 });

const runTag = Date.now().toString(36);
let seq = 0;

for (const t of targets) {
  const T = `[${t.name}]`;
  describe(`${T} cursors page in Chromium`, () => {
    before(() => t.start(), { timeout: 120000 });
    const contexts = [];
    after(async () => { for (const c of contexts.splice(0)) await c.close(); });

    async function openPage(label, board) {
      const ctx = await browser.newContext({ viewport: VIEW });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.errors = [];
      page.on('pageerror', (e) => page.errors.push(`${label}: ${e.message}`));
      page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`${label} console: ${m.text()}`); });
      const res = await page.goto(`${t.baseUrl}/?board=${board}`);
      assert.equal(res.status(), 200, `${T} GET / status`);
      await page.locator('#state[data-state="open"]').waitFor();
      await page.waitForFunction(() => window.wsedgeCursors.selfId.length === 22);
      page.selfId = await page.evaluate(() => window.wsedgeCursors.selfId);
      return page;
    }

    /** Move the pointer to a fraction of the board; resolves the position the page sent. */
    async function pointTo(page, fx, fy) {
      const box = await page.locator('#board').boundingBox();
      const before = await page.evaluate(() => window.wsedgeCursors.sent);
      await page.mouse.move(box.x + fx * box.width, box.y + fy * box.height, { steps: 4 });
      await page.waitForFunction((n) => window.wsedgeCursors.sent > n, before);
      return page.evaluate(() => window.wsedgeCursors.position);
    }

    /** On `viewer`, the cursor of `id` shows the position `sent` (f32 on the wire) at the right place. */
    async function showsCursor(viewer, id, sent) {
      const [x, y] = sent.map(Math.fround);
      const cur = viewer.locator(`#board .cursor[data-id="${id}"]`);
      await cur.waitFor({ state: 'visible' });
      await viewer.waitForFunction(([i, wx, wy]) => {
        const el = document.querySelector(`#board .cursor[data-id="${i}"]`);
        return el && el.dataset.x === String(wx) && el.dataset.y === String(wy);
      }, [id, x, y]);
      // the cursor's tip is where the pointer was, in the viewer's board
      const box = await viewer.locator('#board').boundingBox();
      await viewer.waitForFunction(([i, px, py]) => {
        const r = document.querySelector(`#board .cursor[data-id="${i}"]`).getBoundingClientRect();
        return Math.abs(r.left - px) < 1.5 && Math.abs(r.top - py) < 1.5;
      }, [id, box.x + x * box.width, box.y + y * box.height]);
    }

    test(`${T} two pages: one moves, the other shows its cursor; late joiner; leave; screenshot`, async () => {
      const board = `br-${runTag}-${++seq}`;
      const a = await openPage('page A', board);
      const b = await openPage('page B', board);
      await a.locator('#count', { hasText: '2' }).waitFor();
      assert.equal(await b.locator('#count').textContent(), '2');
      // B has not moved yet: A knows it, but shows no cursor for it
      assert.equal(await a.locator(`.cursor[data-id="${b.selfId}"]`).isHidden(), true);
      assert.equal(await a.locator(`.cursor[data-id="${a.selfId}"]`).count(), 0, `${T} no cursor of one's own`);

      const p1 = await pointTo(b, 0.3, 0.6);
      assert.ok(Math.abs(p1[0] - 0.3) < 0.01 && Math.abs(p1[1] - 0.6) < 0.01, `${T} sent ${p1}`);
      await showsCursor(a, b.selfId, p1);
      const p2 = await pointTo(b, 0.75, 0.2);
      await showsCursor(a, b.selfId, p2);
      const pa = await pointTo(a, 0.1, 0.9);
      await showsCursor(b, a.selfId, pa);

      // throttled to animation frames: a burst of pointer events is one message
      const burst = await b.evaluate(async () => {
        const app = window.wsedgeCursors, el = document.getElementById('board');
        const r = el.getBoundingClientRect(), before = app.sent;
        for (let i = 1; i <= 50; i++) {
          el.dispatchEvent(new PointerEvent('pointermove', { bubbles: true, clientX: r.left + i * 4, clientY: r.top + i * 3 }));
        }
        await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
        return { sent: app.sent - before, position: app.position };
      });
      assert.equal(burst.sent, 1, `${T} 50 pointer events in one frame: one message`);
      await showsCursor(a, b.selfId, burst.position);

      // a late page sees both cursors from the snapshot alone
      const c = await openPage('page C', board);
      await showsCursor(c, b.selfId, burst.position);
      await showsCursor(c, a.selfId, pa);
      await a.locator('#count', { hasText: '3' }).waitFor();
      assert.equal(await c.locator('#count').textContent(), '3');

      mkdirSync(SHOTS, { recursive: true });
      await c.screenshot({ path: path.join(SHOTS, `cursors-${t.name}.png`) });

      // B goes away: its cursor leaves A and C
      await b.close();
      await a.locator(`.cursor[data-id="${b.selfId}"]`).waitFor({ state: 'detached' });
      await c.locator(`.cursor[data-id="${b.selfId}"]`).waitFor({ state: 'detached' });
      await a.locator('#count', { hasText: '2' }).waitFor();
      assert.deepEqual([...a.errors, ...b.errors, ...c.errors], [], `${T} page errors`);
    });

    test(`${T} a dropped socket reconnects and puts the cursor back; a refused message does not retry`, async () => {
      const board = `br-${runTag}-${++seq}`;
      const a = await openPage('page A', board);
      const b = await openPage('page B', board);
      const p = await pointTo(b, 0.4, 0.45);
      await showsCursor(a, b.selfId, p);
      const firstId = b.selfId;
      // an unexpected close: B reconnects as a new session and re-sends its position
      await b.evaluate(() => window.wsedgeCursors.socket.close(4001, 'test drop'));
      await a.locator(`.cursor[data-id="${firstId}"]`).waitFor({ state: 'detached' });
      await b.locator('#state[data-state="open"]').waitFor();
      await b.waitForFunction((old) => window.wsedgeCursors.selfId.length === 22 && window.wsedgeCursors.selfId !== old, firstId);
      const secondId = await b.evaluate(() => window.wsedgeCursors.selfId);
      await showsCursor(a, secondId, p);
      await a.locator('#count', { hasText: '2' }).waitFor();
      // text is not part of the protocol: the server closes 1003 and the page stops
      await b.evaluate(() => window.wsedgeCursors.socket.send('hello'));
      await b.locator('#state[data-state="error"]').waitFor();
      await a.locator(`.cursor[data-id="${secondId}"]`).waitFor({ state: 'detached' });
      await new Promise((r) => setTimeout(r, 600)); // longer than the first retry delay
      assert.equal(await b.locator('#state').textContent(), 'error');
      assert.equal(await b.evaluate(() => window.wsedgeCursors.socket), null);
      assert.equal(await a.locator('#count').textContent(), '1');
      assert.deepEqual([...a.errors, ...b.errors], [], `${T} page errors`);
    });

    test(`${T} another board is another world; a bad board name falls back to lobby`, async () => {
      const a = await openPage('page A', `br-${runTag}-${++seq}`);
      const b = await openPage('page B', `br-${runTag}-${++seq}`);
      await pointTo(b, 0.5, 0.5);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await a.locator('.cursor').count(), 0, `${T} no cursor from another board`);
      assert.equal(await a.locator('#count').textContent(), '1');
      const bad = await openPage('page bad', 'no%20spaces');
      assert.equal(await bad.evaluate(() => window.wsedgeCursors.board), 'lobby');
      assert.deepEqual([...a.errors, ...b.errors, ...bad.errors], [], `${T} page errors`);
    });
  });
}
