// Origin allow-list on the native target: a cross-origin browser upgrade
// (Origin: https://evil.example, Host: 127.0.0.1:PORT) is refused with 403
// and the core's JSON body, before any upgrade; same-origin and Origin-less
// (non-browser) upgrades pass; with --allow-origin only the listed origins
// pass. The same 403 at the edge is in tests/workers/hardening.test.js.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseResponse, rawExchange, startServer, upgradeRequest } from './lib.mjs';

async function upgrade(port, p, headers) {
  const r = await rawExchange(port, upgradeRequest(p, port, headers), 5000);
  const res = parseResponse(r.buf);
  assert.ok(res, `no response to ${p} ${JSON.stringify(headers)} (${r.ended})`);
  return { ...res, ended: r.ended };
}

function assert403(res) {
  assert.equal(res.status, 403);
  assert.equal(res.reason, 'Forbidden');
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.equal(res.headers['sec-websocket-accept'], undefined);
  assert.equal(res.headers.upgrade, undefined);
  assert.equal(res.body, '{"error":"origin not allowed"}');
  assert.equal(res.ended, 'end', 'the server closes after the 403');
}

describe('Origin allow-list (native, default: same host)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--threads', '1'] }); });
  after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }); });

  for (const p of ['/ws', '/chat/lobby?name=eve']) {
    test(`cross-origin browser upgrade of ${p} -> 403`, async () => {
      assert403(await upgrade(srv.port, p, { Origin: 'https://evil.example' }));
    });
  }
  test('look-alikes of the host are foreign too', async () => {
    for (const o of [
      'http://127.0.0.1.evil.example',
      `http://127.0.0.1:${srv.port}.evil.example`,
      'http://127.0.0.1', // other port
      `http://user@127.0.0.1:${srv.port}`,
      'null',
    ]) {
      const res = await upgrade(srv.port, '/ws', { Origin: o });
      assert.equal(res.status, 403, `Origin: ${o}`);
    }
    // two Origin headers: refused even when one of them matches
    const r = await rawExchange(srv.port, upgradeRequest('/ws', srv.port, {}).replace('\r\n\r\n',
      `\r\nOrigin: http://127.0.0.1:${srv.port}\r\nOrigin: https://evil.example\r\n\r\n`));
    assert.equal(parseResponse(r.buf).status, 403);
  });
  test('same-origin and Origin-less upgrades -> 101', async () => {
    for (const h of [{ Origin: `http://127.0.0.1:${srv.port}` }, {}]) {
      const r = await rawExchange(srv.port, upgradeRequest('/ws', srv.port, h), 1000);
      assert.match(r.buf.toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/, JSON.stringify(h));
    }
  });
});

describe('Origin allow-list (native, --allow-origin https://chat.example)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--threads', '1', '--allow-origin', 'https://chat.example'] }); });
  after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }); });

  test('only the listed origin passes', async () => {
    const ok = await rawExchange(srv.port, upgradeRequest('/ws', srv.port, { Origin: 'https://chat.example' }), 1000);
    assert.match(ok.buf.toString('latin1'), /^HTTP\/1\.1 101 /);
    assert403(await upgrade(srv.port, '/ws', { Origin: 'https://evil.example' }));
    assert403(await upgrade(srv.port, '/ws', { Origin: `http://127.0.0.1:${srv.port}` }));
  });
});
