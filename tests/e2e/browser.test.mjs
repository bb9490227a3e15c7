// The chat page (GET /) in headless Chromium against both targets: two
// pages chat, leave, and a page reconnects after its socket drops. Drives the
// system Chromium (/usr/bin/chromium) through playwright-core; never
// downloads a browser. Screenshots: build/e2e/<target>.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { chromiumLaunchOptions } from '../../bindings/workers/testing.mjs';
import { ROOT, startAll, stopAll, targets } from './targets.mjs';

const SHOTS = path.join(ROOT, 'build/e2e');
const WAIT_MS = 10000;

let browser;
before(async () => {
  startAll(targets);
  browser = await chromium.launch(chromiumLaunchOptions());
}, { timeout: 60000 });
after(async () => {
  if (browser) await browser.close();
  await stopAll(targets);
}, { timeout: 30000 });

let seq = 0;
const runTag = Date.now().toString(36);

for (const t of targets) {
  const T = `[${t.name}]`;
  describe(`${T} chat page in Chromium`, () => {
    before(() => t.start(), { timeout: 120000 });
    const contexts = [];
    after(async () => { for (const c of contexts.splice(0)) await c.close(); });

    /** A fresh page (own context = own cookies/storage) on the target's /,
     * collecting page errors so a broken script fails the test. */
    async function openPage(label) {
      const ctx = await browser.newContext({ viewport: { width: 900, height: 700 } });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.errors = [];
      page.on('pageerror', (e) => page.errors.push(`${label}: ${e.message}`));
      const res = await page.goto(t.baseUrl + '/');
      assert.equal(res.status(), 200, `${T} GET / status`);
      assert.match(res.headers()['content-type'] || '', /^text\/html/, `${T} GET / content-type`);
      // Record every connection state the page shows, in order.
      await page.evaluate(() => {
        window.__states = [document.getElementById('state').dataset.state];
        new MutationObserver(() => {
          const s = document.getElementById('state').dataset.state;
          if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
        }).observe(document.getElementById('state'), { attributes: true, attributeFilter: ['data-state'] });
      });
      return page;
    }

    /** Join through the form, using the labels as a user (or screen reader) would. */
    async function joinRoom(page, room, name) {
      await page.getByLabel('Room').fill(room);
      await page.getByLabel('Your name').fill(name);
      await page.getByLabel('Your name').press('Enter');   // submits the join form
      await page.locator('#state[data-state="open"]').waitFor();
      await page.locator('#log li', { hasText: `You joined as ${name}` }).waitFor();
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      assert.equal(focused, 'msg', `${T} focus must move to the message input after joining`);
    }

    const logHas = (page, text) => page.locator('#log li', { hasText: text }).first().waitFor();
    const count = (page) => page.locator('#count').textContent();

    test(`${T} two pages: join, message (Enter), leave; screenshot`, async () => {
      const room = `br-${runTag}-${++seq}`;
      const a = await openPage('page A');
      const b = await openPage('page B');
      assert.equal(await a.locator('#state').textContent(), 'closed');
      await joinRoom(a, room, 'Ada');
      await joinRoom(b, room, 'Bo "<b>"');
      // Each page sees the other: A gets B's join event, B sees two members.
      await logHas(a, 'Bo "<b>" joined');
      assert.equal(await count(a), '2');
      assert.equal(await count(b), '2');

      // Typed in one, Enter, appears in the other (and in the sender's log).
      await a.getByLabel('Message', { exact: true }).fill('hello from Ada');
      await a.getByLabel('Message', { exact: true }).press('Enter');
      await logHas(b, 'hello from Ada');
      await logHas(a, 'hello from Ada');
      assert.equal(await a.getByLabel('Message', { exact: true }).inputValue(), '', `${T} input cleared after sending`);

      // User data is text, never markup.
      const evil = '<img src=x onerror="window.__pwned=1">';
      await b.getByLabel('Message', { exact: true }).fill(evil);
      await b.getByLabel('Message', { exact: true }).press('Enter');
      await logHas(a, evil);
      assert.equal(await a.locator('#log img').count(), 0, `${T} a message must not create elements`);
      assert.equal(await a.evaluate(() => window.__pwned), undefined);
      const line = await a.locator('#log li', { hasText: evil }).first().textContent();
      assert.ok(line.includes('Bo "<b>":'), `${T} sender name shown as text: ${line}`);

      // "/to ID text" sends a direct message: the addressee sees it marked as direct.
      const adaId = await a.evaluate(() => window.wsedgeChat.selfId);
      await b.getByLabel('Message', { exact: true }).fill(`/to ${adaId} just for you`);
      await b.getByLabel('Message', { exact: true }).press('Enter');
      await a.locator('#log li.direct', { hasText: 'just for you' }).waitFor();
      assert.match(await a.locator('#log li.direct').last().textContent(), /Bo "<b>" \(direct to you\):just for you/);
      await b.locator('#log li.direct.self', { hasText: 'just for you' }).waitFor();

      // State is shown as text; the log is a polite live region.
      assert.equal(await a.locator('#state').textContent(), 'open');
      assert.equal(await a.locator('#log').getAttribute('aria-live'), 'polite');

      mkdirSync(SHOTS, { recursive: true });
      await a.screenshot({ path: path.join(SHOTS, `${t.name}.png`), fullPage: true });

      // Leave: the other page sees it; no reconnect on the page that left.
      await b.locator('#leave').click();
      await logHas(a, 'Bo "<b>" left');
      assert.equal(await count(a), '1');
      await b.locator('#state[data-state="closed"]').waitFor();
      assert.equal(await b.locator('#join').isEnabled(), true);
      assert.equal(await b.getByLabel('Message', { exact: true }).isDisabled(), true);
      assert.deepEqual(await b.evaluate(() => window.__states), ['closed', 'connecting', 'open', 'closed'],
        `${T} page B's connection states`);
      assert.deepEqual([...a.errors, ...b.errors], [], `${T} page errors`);
    });

    test(`${T} a join the server refuses is reported, not retried`, async () => {
      const page = await openPage('page');
      // U+0085 (a C1 control) passes the page's own checks; the app refuses it (400).
      await page.getByLabel('Room').fill(`br-${runTag}-${++seq}`);
      await page.getByLabel('Your name').fill('bad\u0085name');
      await page.locator('#join').click();
      await page.locator('#log li.error', { hasText: 'Could not join' }).waitFor();
      assert.equal(await page.locator('#state').textContent(), 'closed');
      assert.deepEqual(await page.evaluate(() => window.__states), ['closed', 'connecting', 'closed'],
        `${T} states after a refused join`);
      assert.equal(await page.evaluate(() => window.wsedgeChat.socket), null);
      assert.equal(await page.locator('#join').isEnabled(), true);
      assert.deepEqual(page.errors, [], `${T} page errors`);
    });

    // Two pages in a fresh room: Ann, then Ben (Ann has seen him join).
    async function annAndBen() {
      const room = `br-${runTag}-${++seq}`;
      const a = await openPage('page A');
      const b = await openPage('page B');
      await joinRoom(a, room, 'Ann');
      await joinRoom(b, room, 'Ben');
      await logHas(a, 'Ben joined');
      return { a, b, room };
    }

    test(`${T} page reconnects with backoff after its socket drops`, async () => {
      const { a, b } = await annAndBen();
      const firstId = await a.evaluate(() => window.wsedgeChat.selfId);

      // An unexpected drop (not the Leave button).
      await a.evaluate(() => window.wsedgeChat.socket.close(4001, 'test drop'));
      await logHas(b, 'Ann left');
      await a.locator('#state[data-state="open"]').waitFor({ timeout: WAIT_MS });
      const states = await a.evaluate(() => window.__states);
      assert.deepEqual(states.slice(-3), ['open', 'reconnecting', 'open'], `${T} states: ${states.join(' -> ')}`);
      const secondId = await a.evaluate(() => window.wsedgeChat.selfId);
      assert.notEqual(secondId, firstId, `${T} the reconnect is a new session`);
      // B sees A's new join (a second "Ann joined" line) and the count is back to 2.
      await b.locator('#log li', { hasText: `Ann joined (id ${secondId})` }).waitFor();
      assert.equal(await count(a), '2');
      assert.equal(await count(b), '2');
      // The reconnected page still chats.
      await a.getByLabel('Message', { exact: true }).press('End');
      await a.getByLabel('Message', { exact: true }).fill('back again');
      await a.getByLabel('Message', { exact: true }).press('Enter');
      await logHas(b, 'back again');
      assert.deepEqual([...a.errors, ...b.errors], [], `${T} page errors`);
    });

    test(`${T} after a drop the page resumes with ?since: what it missed, each message once, in order`, async () => {
      const { a, b } = await annAndBen();
      const send = async (page, text) => {
        await page.getByLabel('Message', { exact: true }).fill(text);
        await page.getByLabel('Message', { exact: true }).press('Enter');
      };
      await send(b, 'before');
      await logHas(a, 'before');
      const seenBefore = await a.evaluate(() => window.wsedgeChat.lastSeq);
      assert.ok(seenBefore >= 3, `${T} the page tracks the room's numbers (${seenBefore})`);
      // the connection drops and A's network stays down (its reconnects fail
      // and back off) until B has talked: what A missed is certain, however
      // slow the machine
      await a.context().setOffline(true);
      await a.evaluate(() => window.wsedgeChat.socket.close(4001, 'test drop'));
      await logHas(b, 'Ann left');
      for (const t of ['missed 1', 'missed 2', 'missed 3']) await send(b, t);
      await logHas(b, 'missed 3');
      await a.context().setOffline(false);
      await a.locator('#state[data-state="open"]').waitFor({ timeout: WAIT_MS });
      const url = await a.evaluate(() => window.wsedgeChat.socket.url);
      assert.match(url, new RegExp(`[?&]since=${seenBefore}(&|$)`), `${T} the reconnect resumes: ${url}`);
      const secondId = await a.evaluate(() => window.wsedgeChat.selfId);
      await b.locator('#log li', { hasText: `Ann joined (id ${secondId})` }).waitFor();
      // B's messages were sent before A was back: A got them from the history
      const bLog = await b.locator('#log li').allTextContents();
      assert.ok(bLog.findIndex((l) => l.includes('missed 3')) < bLog.findIndex((l) => l.includes(`Ann joined (id ${secondId})`)),
        `${T} sent while A was away`);
      await send(b, 'live again');
      await logHas(a, 'live again');
      const texts = (await a.locator('#log li.message .text').allTextContents());
      assert.deepEqual(texts, ['before', 'missed 1', 'missed 2', 'missed 3', 'live again'], `${T} each message once, in order`);
      assert.equal(await a.locator('#log li.gap').count(), 0, `${T} nothing was lost`);
      assert.deepEqual([...a.errors, ...b.errors], [], `${T} page errors`);
    });
  });
}
