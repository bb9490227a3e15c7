// HTTP side of `wsedge serve`: host routes, static files, the app's HTTP
// routes, every upgrade rejection with its exact status, extra header and
// JSON body, head/body limits, split and pipelined input, --max-connections.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { ROOT, encodeFrame, httpRaw, rawWs, startServer, upgradeHead } from './server.mjs';

let srv;
let dir;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'wsedge-static-'));
  writeFileSync(path.join(dir, 'hello.txt'), 'hello static\n');
  writeFileSync(path.join(dir, 'app.css'), 'body{}');
  writeFileSync(path.join(dir, '.secret'), 'hidden');
  mkdirSync(path.join(dir, 'sub'));
  writeFileSync(path.join(dir, 'sub', 'index.html'), '<p>sub</p>');
  srv = await startServer(['--threads', '2', '--static', dir]);
});
after(async () => {
  const e = await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(e, { code: 0, signal: null }, srv.log());
});

const get = (p, init) => fetch(srv.url + p, init);

describe('host routes', () => {
  test('GET /healthz -> 200 {"status":"ok"}', async () => {
    const r = await get('/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(await r.text(), '{"status":"ok"}');
  });

  test('GET /stats -> 200 JSON with every counter', async () => {
    const r = await get('/stats');
    assert.equal(r.status, 200);
    const s = await r.json();
    for (const k of ['connections', 'rooms', 'members', 'messages_in', 'messages_out', 'bytes_in', 'bytes_out', 'uptime_s',
      'slow_consumers', 'send_timeouts'])
      assert.equal(typeof s[k], 'number', k);
    assert.ok(s.connections >= 1);
    assert.equal(s.slow_consumers, 0);
    assert.equal(s.send_timeouts, 0);
  });

  test('GET / without DIR/index.html serves the embedded chat page byte for byte', async () => {
    const r = await get('/');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    const page = readFileSync(path.join(ROOT, 'worker/chat.html'));
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), page);
  });

  test('HEAD / -> headers with the length, no body', async () => {
    const r = await httpRaw(srv.port, 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers['content-length']), readFileSync(path.join(ROOT, 'worker/chat.html')).length);
    assert.equal(r.body, '');
  });

  test('wrong method on host routes -> 405 JSON with Allow', async () => {
    for (const p of ['/', '/healthz', '/stats']) {
      const r = await get(p, { method: 'POST', body: 'x' });
      assert.equal(r.status, 405, p);
      assert.equal(r.headers.get('allow'), 'GET, HEAD');
      assert.deepEqual(await r.json(), { error: 'method not allowed' });
    }
  });

  test('static files with content types; directories use index.html', async () => {
    let r = await get('/hello.txt');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(await r.text(), 'hello static\n');
    r = await get('/app.css');
    assert.equal(r.headers.get('content-type'), 'text/css; charset=utf-8');
    assert.equal(await r.text(), 'body{}');
    r = await get('/sub/');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '<p>sub</p>');
  });

  test('no path traversal, no hidden files, no directories, no escapes', async () => {
    for (const p of ['/../etc/passwd', '/sub/../hello.txt', '/.secret', '/sub', '/%2e%2e/etc/passwd', '//etc/passwd', '/missing.txt']) {
      const r = await httpRaw(srv.port, `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(r.status, 404, p);
      assert.equal(r.body, '{"error":"not found"}', p);
    }
  });
});

describe('app HTTP routes', () => {
  test('GET /ws without an upgrade -> 400 JSON', async () => {
    const r = await get('/ws');
    assert.equal(r.status, 400);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(await r.text(), '{"error":"This endpoint requires a WebSocket upgrade"}');
  });

  test('unknown path -> 404 JSON', async () => {
    const r = await get('/nope');
    assert.equal(r.status, 404);
    assert.equal(await r.text(), '{"error":"not found"}');
  });

  test('POST /chat/:room/messages reaches members on every thread; GET stats', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map((i) => new Promise((res, rej) => {
      const ws = new WebSocket(`${srv.wsUrl}/chat/push?name=u${i}`);
      ws.msgs = [];
      ws.on('message', (d) => ws.msgs.push(JSON.parse(d)));
      ws.on('open', () => res(ws));
      ws.on('error', rej);
    })));
    try {
      // every client has seen the last join
      const deadline = Date.now() + 5000;
      while (!clients.every((c) => c.msgs.some((m) => m.type === 'join' && m.count === 4))) {
        assert.ok(Date.now() < deadline, 'joins not delivered');
        await new Promise((r) => setTimeout(r, 20));
      }
      let r = await get('/chat/push/messages', { method: 'POST', body: 'from the server' });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { delivered: 4 });
      for (const c of clients) {
        while (!c.msgs.some((m) => m.type === 'message')) await new Promise((res) => setTimeout(res, 20));
        const m = c.msgs.find((x) => x.type === 'message');
        assert.equal(m.text, 'from the server');
        assert.equal(m.id, 'server');
      }
      r = await get('/chat/push/stats');
      assert.equal(r.status, 200);
      const st = await r.json();
      assert.equal(st.room, 'push');
      assert.equal(st.members, 4);
      r = await get('/stats');
      const s = await r.json();
      assert.ok(s.members >= 4 && s.rooms >= 1 && s.websockets >= 4, JSON.stringify(s));
    } finally {
      for (const c of clients) c.close();
    }
  });

  test('request bodies: 413 over 64 KiB, 411 chunked, 400 bad Content-Length', async () => {
    let r = await httpRaw(srv.port, 'POST /chat/a/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n');
    assert.equal(r.status, 413);
    assert.equal(r.body, '{"error":"request body too large"}');
    r = await httpRaw(srv.port, 'POST /chat/a/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(r.status, 411);
    assert.equal(r.headers['content-type'], 'application/json');
    r = await httpRaw(srv.port, 'POST /chat/a/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    assert.equal(r.status, 400);
    assert.equal(r.body, '{"error":"invalid Content-Length"}');
  });

  test('a body split across packets is read whole', async () => {
    const body = 'x'.repeat(3000);
    const r = await httpRaw(srv.port, `POST /chat/split/messages HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      { chunkSize: 700, chunkDelay: 5 });
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"delivered":0}');
  });
});

describe('upgrade rejections (exact status, header, JSON body)', () => {
  const cases = [
    ['POST -> 405 + Allow: GET', (p) => upgradeHead(p, '/ws', {}, { method: 'POST' }), 405, { allow: 'GET' }, 'method not allowed (expected GET)'],
    ['version 8 -> 426 + Sec-WebSocket-Version: 13', (p) => upgradeHead(p, '/ws', {}, { version: '8' }), 426, { 'sec-websocket-version': '13' }, 'unsupported Sec-WebSocket-Version (expected 13)'],
    ['missing key -> 400', (p) => upgradeHead(p, '/ws', { 'Sec-WebSocket-Key': null }), 400, {}, 'missing Sec-WebSocket-Key'],
    ['key of 15 bytes -> 400', (p) => upgradeHead(p, '/ws', {}, { key: Buffer.alloc(15).toString('base64') }), 400, {}, 'Sec-WebSocket-Key must be base64 of 16 bytes'],
    ['foreign Origin -> 403', (p) => upgradeHead(p, '/ws', { Origin: 'http://evil.example' }), 403, {}, 'origin not allowed'],
    ['unknown path -> 404', (p) => upgradeHead(p, '/nowhere'), 404, {}, 'not found'],
    ['HTTP/1.0 -> 400', (p) => upgradeHead(p, '/ws').replace('HTTP/1.1', 'HTTP/1.0'), 400, {}, 'HTTP/1.1 or later required'],
    ['bad chat room -> 400 from on_upgrade', (p) => upgradeHead(p, '/chat/bad%20room'), 400, {}, 'invalid room'],
  ];
  for (const [name, make, status, hdrs, error] of cases) {
    test(name, async () => {
      const r = await httpRaw(srv.port, make(srv.port));
      assert.equal(r.status, status, r.raw.toString());
      for (const [k, v] of Object.entries(hdrs)) assert.equal(r.headers[k], v, k);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.body, JSON.stringify({ error }));
      assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
      assert.equal(r.headers.connection, 'close');
    });
  }

  test('same-host Origin and a browser-style Connection list are accepted', async () => {
    const ws = await rawWs(srv.port, '/ws', { headers: { Origin: `http://127.0.0.1:${srv.port}` } });
    ws.destroy();
    const r = await httpRaw(srv.port, upgradeHead(srv.port, '/ws', { Connection: 'keep-alive, Upgrade' }), { ms: 1500 }).catch((e) => e);
    // a 101 keeps the connection open: the helper times out instead of seeing a close
    assert.ok(r instanceof Error && /not completed/.test(r.message));
  });
});

describe('request head', () => {
  test('a 9 KiB head -> 431 JSON', async () => {
    const r = await httpRaw(srv.port, `GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9 * 1024)}\r\n\r\n`);
    assert.equal(r.status, 431);
    assert.equal(r.body, '{"error":"request head too large"}');
  });

  test('too many header fields -> 431', async () => {
    let h = 'GET / HTTP/1.1\r\n';
    for (let i = 0; i < 70; i++) h += `X-${i}: 1\r\n`;
    const r = await httpRaw(srv.port, h + '\r\n');
    assert.equal(r.status, 431);
  });

  test('malformed heads -> 400 JSON', async () => {
    for (const h of ['GET /ws\r\n\r\n', 'GET /ws HTTP/1.1\r\nBad Header: x\r\n\r\n', 'GET /ws HTTP/1.1\r\n folded: x\r\n\r\n',
      'GET /ws HTTP/2.0\r\nHost: x\r\n\r\n', 'GET /ws HTTP/1.1\r\nHost: a\rb\r\n\r\n']) {
      const r = await httpRaw(srv.port, h);
      assert.equal(r.status, 400, JSON.stringify(h));
      assert.equal(r.body, '{"error":"malformed request"}');
    }
  });

  test('absolute-form targets and a leading empty line are accepted (RFC 9112 §2.2, §3.2.2)', async () => {
    for (const h of ['GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      'GET HTTPS://example.com/healthz?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n',
      '\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const r = await httpRaw(srv.port, h);
      assert.equal(r.status, 200, JSON.stringify(h));
      assert.equal(r.body, '{"status":"ok"}');
    }
    const root = await httpRaw(srv.port, 'GET http://127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.equal(root.status, 200);
    assert.match(root.headers['content-type'], /^text\/html/);
    const ws = await rawWs(srv.port, `http://127.0.0.1:${srv.port}/ws`);
    ws.send(1, 'absolute');
    assert.equal((await ws.next()).payload.toString(), 'absolute');
    ws.destroy();
  });

  test('an upgrade sent one byte at a time, then frames pipelined after the head', async () => {
    const head = upgradeHead(srv.port, '/ws');
    const net = await import('node:net');
    const s = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => s.on('connect', r));
    s.setNoDelay(true);
    let acc = Buffer.alloc(0);
    s.on('data', (d) => { acc = Buffer.concat([acc, d]); });
    for (const ch of Buffer.from(head)) { s.write(Buffer.from([ch])); await new Promise((r) => setImmediate(r)); }
    while (acc.indexOf('\r\n\r\n') < 0) await new Promise((r) => setTimeout(r, 10));
    assert.match(acc.toString(), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    s.destroy();

    // frames in the same packet as the head are parsed after the 101
    const ws = await rawWs(srv.port, '/ws', { pipelined: Buffer.concat([encodeFrame(1, 'one'), encodeFrame(2, Buffer.from([1, 2, 3]))]) });
    const a = await ws.next(), b = await ws.next();
    assert.equal(a.opcode, 1);
    assert.equal(a.payload.toString(), 'one');
    assert.equal(b.opcode, 2);
    assert.deepEqual([...b.payload], [1, 2, 3]);
    ws.destroy();
  });
});

test('--max-connections: the connection over the limit gets 503 JSON, others unaffected', async () => {
  const s2 = await startServer(['--threads', '1', '--max-connections', '2']);
  try {
    const a = await rawWs(s2.port, '/ws');
    const b = await rawWs(s2.port, '/ws');
    const r = await httpRaw(s2.port, upgradeHead(s2.port, '/ws'));
    assert.equal(r.status, 503);
    assert.equal(r.body, '{"error":"too many connections"}');
    a.send(1, 'still here');
    const f = await a.next();
    assert.equal(f.payload.toString(), 'still here');
    b.destroy();
    a.destroy();
  } finally {
    assert.deepEqual(await s2.stop(), { code: 0, signal: null }, s2.log());
  }
});
