// Autobahn|Testsuite-style conformance of the native server's echo route
// (/ws), modelled on the fuzzingclient sections 1-7, 9 and 10 with
// Autobahn's pass criteria: exact opcodes, payload bytes, close codes and
// ordering; after every Close from the server, nothing more on the wire and
// the server closes the TCP connection itself. Raw frames wherever Autobahn
// sends raw; npm ws only for plain big echoes and round trips (9.x).
//
// Chops (how Autobahn writes its octets): 'one' = everything in one write,
// 'frames' = one write per frame with a pause, 'octets' = one write per byte.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SLOW, closePayload, encodeFrame, rawWs, roundTrip, sleep, startServer, until } from './server.mjs';

let srv;
before(async () => { srv = await startServer(['--threads', '2']); });
after(async () => { assert.deepEqual(await srv.stop(), { code: 0, signal: null }, srv.log()); });
// a failed test leaves its connection open: drop it, so that the server's
// shutdown does not wait out its close timeout for it
const conns = new Set();
afterEach(() => { for (const c of conns) c.terminate ? c.terminate() : c.destroy(); conns.clear(); });

const TEXT = 1, BINARY = 2, CLOSE = 8, PING = 9, PONG = 10;
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const FRAME_PAUSE = 10; // ms between 'frames' chops

/** Wire size of an (unmasked) server frame. */
function wireSize(f) {
  const n = f.payload.length;
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + n;
}

/** A raw /ws connection that counts the wire bytes of every frame taken, so
 * that "nothing after the Close" covers partial frames too. */
async function open(opts) {
  const ws = await rawWs(srv.port, '/ws', opts);
  conns.add(ws);
  ws.seen = 0;
  const next = ws.next;
  ws.next = async (t) => {
    const f = await next(t);
    if (f) ws.seen += wireSize(f);
    return f;
  };
  return ws;
}

/** Write frames (Buffers) with Autobahn's chop modes. */
async function write(ws, frames, chop = 'one') {
  if (chop === 'one') { ws.sendRaw(Buffer.concat(frames)); return; }
  if (chop === 'frames') {
    for (const f of frames) { ws.sendRaw(f); await sleep(FRAME_PAUSE); }
    return;
  }
  assert.equal(chop, 'octets');
  for (const f of frames) {
    for (let i = 0; i < f.length; i++) {
      if (ws.ended) return;
      ws.sendRaw(f.subarray(i, i + 1));
      await sleep(1);
    }
  }
}

/** Write one buffer in pieces of `size` bytes, yielding between pieces. */
async function writeChunked(ws, buf, size) {
  for (let i = 0; i < buf.length; i += size) {
    ws.sendRaw(buf.subarray(i, i + size));
    await new Promise((r) => setImmediate(r));
  }
}

const F = (opcode, payload = Buffer.alloc(0), opts) => encodeFrame(opcode, payload, opts);

/** The next frame must be exactly this data frame / control frame. */
async function expectFrame(ws, opcode, payload, timeout) {
  const f = await ws.next(timeout);
  assert.ok(f, `connection ended; expected opcode ${opcode}`);
  assert.equal(f.opcode, opcode, `opcode (payload ${f.payload.subarray(0, 40).toString('hex')})`);
  assert.equal(f.rsv, 0, 'rsv');
  if (opcode !== 0 || payload !== undefined) {
    const want = Buffer.from(payload);
    assert.equal(f.payload.length, want.length, `payload length of opcode ${opcode}`);
    assert.ok(f.payload.equals(want), `payload of opcode ${opcode}`);
  }
  return f;
}

/** The next data message (one frame or a fragmented sequence, no control
 * frames in between) must be `payload` with `opcode`. */
async function expectMessage(ws, opcode, payload, timeout = 10000 * SLOW) {
  const want = Buffer.from(payload);
  let f = await ws.next(timeout);
  assert.ok(f, `connection ended; expected a message of ${want.length} bytes`);
  assert.equal(f.opcode, opcode, `message opcode (got ${f.opcode}${f.opcode === CLOSE ? ` code ${f.code} "${f.reason}"` : ''})`);
  assert.equal(f.rsv, 0);
  const parts = [f.payload];
  while (!f.fin) {
    f = await ws.next(timeout);
    assert.ok(f, 'connection ended inside a message');
    assert.equal(f.opcode, 0, 'continuation expected');
    assert.equal(f.rsv, 0);
    parts.push(f.payload);
  }
  const got = Buffer.concat(parts);
  assert.equal(got.length, want.length, 'message length');
  assert.ok(got.equals(want), 'message bytes differ');
}

/** The next frame is the server's Close with `code` (a number, an array of
 * acceptable codes, or 1005 for an empty payload); then the server closes
 * TCP and nothing at all was sent after its Close. */
async function expectClose(ws, code) {
  const f = await ws.next(10000 * SLOW);
  assert.ok(f, `connection ended without a Close (expected ${code})`);
  assert.equal(f.opcode, CLOSE, `expected Close ${code}, got opcode ${f.opcode} (${f.payload.subarray(0, 40).toString('hex')})`);
  assert.equal(f.fin, true);
  assert.equal(f.rsv, 0);
  const codes = [].concat(code);
  assert.ok(codes.includes(f.code), `close code ${f.code} ("${f.reason}"), expected ${codes.join(' or ')}`);
  assert.ok(f.payload.length !== 1 && f.payload.length <= 125, 'close payload size');
  if (f.payload.length > 2) assert.ok(isUtf8(f.payload.subarray(2)), 'close reason is UTF-8');
  await ws.waitEnd();
  assert.equal(ws.frames.length, 0, 'frames after the Close');
  assert.equal(ws.bytes, ws.seen, 'bytes after the Close');
  return f;
}

function isUtf8(b) {
  try { new TextDecoder('utf-8', { fatal: true }).decode(b); return true; } catch { return false; }
}

/** Autobahn's closing step after a passing sequence: a normal Close is echoed. */
async function closeNormally(ws) {
  ws.send(CLOSE, closePayload(1000));
  await expectClose(ws, 1000);
}

// ---- 1 framing ---------------------------------------------------------------

describe('1 framing', () => {
  const lens = [0, 125, 126, 127, 128, 65535, 65536];
  for (const [sec, opcode, make] of [
    ['1.1', TEXT, (n) => Buffer.from('*'.repeat(n))],
    ['1.2', BINARY, (n) => crypto.randomBytes(n)],
  ]) {
    const kind = opcode === TEXT ? 'text' : 'binary';
    lens.forEach((n, i) => {
      test(`${sec}.${i + 1} ${kind} message, payload ${n}`, async () => {
        const ws = await open();
        const p = make(n);
        ws.send(opcode, p);
        await expectMessage(ws, opcode, p);
        await closeNormally(ws);
      });
    });
    test(`${sec}.8 ${kind} message, payload 65536, in 997-octet chops`, async () => {
      const ws = await open();
      const p = make(65536);
      await writeChunked(ws, F(opcode, p), 997);
      await expectMessage(ws, opcode, p);
      await closeNormally(ws);
    });
  }
});

// ---- 2 pings/pongs -------------------------------------------------------------

describe('2 pings and pongs', () => {
  const pingCases = [
    ['2.1 ping without payload', Buffer.alloc(0)],
    ['2.2 ping with small text payload', Buffer.from('Hello, world!')],
    ['2.3 ping with small binary payload', hex('00ff fefd fcfb 00ff')],
    ['2.4 ping with 125-octet binary payload', crypto.randomBytes(125)],
  ];
  for (const [name, p] of pingCases) {
    test(name, async () => {
      const ws = await open();
      ws.send(PING, p);
      await expectFrame(ws, PONG, p);
      await closeNormally(ws);
    });
  }

  test('2.5 ping with 126-octet payload -> 1002', async () => {
    const ws = await open();
    ws.send(PING, Buffer.alloc(126, 0xfe));
    await expectClose(ws, 1002);
  });

  test('2.6 ping with 125-octet payload sent octet by octet', async () => {
    const ws = await open();
    const p = crypto.randomBytes(125);
    await write(ws, [F(PING, p)], 'octets');
    await expectFrame(ws, PONG, p);
    await closeNormally(ws);
  });

  test('2.7 unsolicited pong without payload: ignored', async () => {
    const ws = await open();
    ws.send(PONG);
    await closeNormally(ws); // the Close is the first frame back
  });

  test('2.8 unsolicited pong with payload: ignored', async () => {
    const ws = await open();
    ws.send(PONG, 'unsolicited pong payload');
    await closeNormally(ws);
  });

  test('2.9 unsolicited pong, then ping: one pong with the ping\'s payload', async () => {
    const ws = await open();
    ws.send(PONG, 'unsolicited pong payload');
    ws.send(PING, 'ping payload');
    await expectFrame(ws, PONG, 'ping payload');
    await closeNormally(ws);
  });

  for (const [name, chop] of [['2.10 10 pings in one packet', 'one'], ['2.10 variant: 10 pings in separate packets', 'frames'],
    ['2.11 10 pings in octet-wise chops', 'octets']]) {
    test(`${name}: 10 pongs, same payloads, in order`, async () => {
      const ws = await open();
      const ps = Array.from({ length: 10 }, (_, i) => Buffer.from(`payload-${i}`));
      await write(ws, ps.map((p) => F(PING, p)), chop);
      for (const p of ps) await expectFrame(ws, PONG, p);
      await closeNormally(ws);
    });
  }
});

// ---- 3 reserved bits -----------------------------------------------------------

describe('3 reserved bits', () => {
  // Autobahn's named cases: a valid text (echoed), then the bad frame, then a
  // ping (never answered: the server fails the connection first).
  const named = [
    ['3.1', 'text with RSV=1', [], F(TEXT, 'Hello, world!', { rsv: 1 }), 'one'],
    ['3.2', 'text, text with RSV=2, ping', ['Hello, world!'], F(TEXT, 'Hello, world!', { rsv: 2 }), 'one'],
    ['3.3', 'text, text with RSV=3, ping (frame-wise chops)', ['Hello, world!'], F(TEXT, 'Hello, world!', { rsv: 3 }), 'frames'],
    ['3.4', 'text, text with RSV=4, ping (octet-wise chops)', ['Hello, world!'], F(TEXT, 'Hello, world!', { rsv: 4 }), 'octets'],
    ['3.5', 'binary with RSV=5', [], F(BINARY, hex('00ff fefd fcfb 00ff'), { rsv: 5 }), 'one'],
    ['3.6', 'ping with RSV=6', [], F(PING, 'Hello, world!', { rsv: 6 }), 'one'],
    ['3.7', 'close with RSV=7', [], F(CLOSE, closePayload(1000), { rsv: 7 }), 'one'],
  ];
  for (const [num, name, echoes, bad, chop] of named) {
    test(`${num} ${name} -> 1002`, async () => {
      const ws = await open();
      await write(ws, [...echoes.map((e) => F(TEXT, e)), bad, F(PING, 'ping')], chop);
      for (const e of echoes) await expectMessage(ws, TEXT, e);
      await expectClose(ws, 1002);
    });
  }

  // every RSV combination on every frame kind, after a valid text in the
  // same packet and in separate packets: the echo first, then 1002
  const kinds = [['text', TEXT, 'bad'], ['binary', BINARY, hex('0102')], ['ping', PING, 'p'], ['close', CLOSE, closePayload(1000)]];
  for (const [kind, op, payload] of kinds) {
    test(`3.x RSV 1..7 on ${kind}, after a valid text (same packet, separate packets) -> echo, then 1002`, async () => {
      for (let rsv = 1; rsv <= 7; rsv++) {
        for (const chop of ['one', 'frames']) {
          const ws = await open();
          await write(ws, [F(TEXT, `valid ${rsv}`), F(op, payload, { rsv }), F(PING, 'after')], chop);
          await expectMessage(ws, TEXT, `valid ${rsv}`);
          await expectClose(ws, 1002);
        }
      }
    });
  }
});

// ---- 4 opcodes -----------------------------------------------------------------

describe('4 reserved opcodes', () => {
  test('4.1.1 non-control opcode 3 -> 1002', async () => {
    const ws = await open();
    ws.send(3);
    await expectClose(ws, 1002);
  });
  test('4.1.2 non-control opcode 4 with payload -> 1002', async () => {
    const ws = await open();
    ws.send(4, 'reserved opcode payload');
    await expectClose(ws, 1002);
  });
  test('4.2.1 control opcode 11 -> 1002', async () => {
    const ws = await open();
    ws.send(11);
    await expectClose(ws, 1002);
  });
  test('4.2.2 control opcode 12 with payload -> 1002', async () => {
    const ws = await open();
    ws.send(12, 'reserved opcode payload');
    await expectClose(ws, 1002);
  });

  // 4.1.3-4.1.5, 4.2.3-4.2.5: text, reserved opcode, ping -> echo, 1002, no pong
  const ops = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15];
  for (const op of ops) {
    for (const withPayload of [false, true]) {
      const sec = op < 8 ? '4.1' : '4.2';
      test(`${sec}.x text, opcode ${op} ${withPayload ? 'with' : 'without'} payload, ping -> echo, then 1002`, async () => {
        const ws = await open();
        await write(ws, [F(TEXT, 'Hello, world!'), F(op, withPayload ? 'reserved opcode payload' : ''), F(PING, 'p')], 'one');
        await expectMessage(ws, TEXT, 'Hello, world!');
        await expectClose(ws, 1002);
      });
    }
  }
  for (const [num, op] of [['4.1.5', 7], ['4.2.5', 15]]) {
    test(`${num} text, opcode ${op} with payload, ping, octet-wise chops -> echo, then 1002`, async () => {
      const ws = await open();
      await write(ws, [F(TEXT, 'Hello, world!'), F(op, 'reserved opcode payload'), F(PING, 'p')], 'octets');
      await expectMessage(ws, TEXT, 'Hello, world!');
      await expectClose(ws, 1002);
    });
  }
});

// ---- 5 fragmentation -------------------------------------------------------------

describe('5 fragmentation', () => {
  test('5.1 ping in 2 fragments -> 1002', async () => {
    const ws = await open();
    await write(ws, [F(PING, 'fragment1', { fin: false }), F(0, 'fragment2')]);
    await expectClose(ws, 1002);
  });
  test('5.2 pong in 2 fragments -> 1002', async () => {
    const ws = await open();
    await write(ws, [F(PONG, 'fragment1', { fin: false }), F(0, 'fragment2')]);
    await expectClose(ws, 1002);
  });

  for (const [num, chop] of [['5.3', 'one'], ['5.4', 'frames'], ['5.5', 'octets']]) {
    test(`${num} text in 2 fragments (${chop})`, async () => {
      const ws = await open();
      await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(0, 'fragment2')], chop);
      await expectMessage(ws, TEXT, 'fragment1fragment2');
      await closeNormally(ws);
    });
  }

  for (const [num, chop] of [['5.6', 'one'], ['5.7', 'frames'], ['5.8', 'octets']]) {
    test(`${num} text in 2 fragments, ping in between (${chop}): pong, then the message`, async () => {
      const ws = await open();
      await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(PING, 'ping payload'), F(0, 'fragment2')], chop);
      await expectFrame(ws, PONG, 'ping payload');
      await expectMessage(ws, TEXT, 'fragment1fragment2');
      await closeNormally(ws);
    });
  }

  test('5.x text and binary in 1, 2 and 100 fragments (with empty fragments)', async () => {
    const ws = await open();
    for (const [op, whole] of [[TEXT, Buffer.from('Hello-µ@ßöäüàá-UTF-8!! '.repeat(20))], [BINARY, crypto.randomBytes(1000)]]) {
      for (const n of [1, 2, 100]) {
        const frames = [];
        const step = Math.ceil(whole.length / n);
        for (let i = 0; i < n; i++) {
          // split on byte boundaries, not code points: validity is per message
          frames.push(F(i === 0 ? op : 0, whole.subarray(i * step, (i + 1) * step), { fin: i === n - 1 }));
        }
        await write(ws, frames);
        await expectMessage(ws, op, whole);
        await write(ws, [F(op, '', { fin: false }), F(0, '', { fin: false }), F(0, whole, { fin: false }), F(0, '')]);
        await expectMessage(ws, op, whole);
      }
    }
    await closeNormally(ws);
  });

  test('5.x pings between fragments are answered while the message is incomplete', async () => {
    const ws = await open();
    const parts = ['one ', 'two ', 'three ', 'four'];
    ws.send(TEXT, parts[0], { fin: false });
    for (let i = 1; i < parts.length; i++) {
      ws.send(PING, `p${i}`);
      await expectFrame(ws, PONG, `p${i}`); // before the message can be complete
      ws.send(0, parts[i], { fin: i === parts.length - 1 });
    }
    await expectMessage(ws, TEXT, parts.join(''));
    await closeNormally(ws);
  });

  for (const [num, chop] of [['5.9', 'one'], ['5.10', 'frames'], ['5.11', 'octets']]) {
    test(`${num} continuation (FIN) with nothing to continue, then text (${chop}) -> 1002`, async () => {
      const ws = await open();
      await write(ws, [F(0, 'non-continuation payload'), F(TEXT, 'Hello, world!')], chop);
      await expectClose(ws, 1002);
    });
  }
  for (const [num, chop] of [['5.12', 'one'], ['5.13', 'frames'], ['5.14', 'octets']]) {
    test(`${num} continuation (no FIN) with nothing to continue, then text (${chop}) -> 1002`, async () => {
      const ws = await open();
      await write(ws, [F(0, 'non-continuation payload', { fin: false }), F(TEXT, 'Hello, world!')], chop);
      await expectClose(ws, 1002);
    });
  }

  test('5.15 text in 2 fragments, then continuation (no FIN) with nothing to continue -> echo, then 1002', async () => {
    // Autobahn also accepts no echo (NON-STRICT); this server handles frames
    // in order, so the complete first message is echoed before the failure
    const ws = await open();
    await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(0, 'fragment2'), F(0, 'fragment3', { fin: false }),
      F(TEXT, 'fragment4')]);
    await expectMessage(ws, TEXT, 'fragment1fragment2');
    await expectClose(ws, 1002);
  });
  test('5.16 2x (continuation no FIN, text in 2 fragments) -> 1002', async () => {
    const ws = await open();
    const seq = [F(0, 'fragment1', { fin: false }), F(TEXT, 'fragment2', { fin: false }), F(0, 'fragment3')];
    await write(ws, [...seq, ...seq]);
    await expectClose(ws, 1002);
  });
  test('5.17 2x (continuation FIN, text in 2 fragments) -> 1002', async () => {
    const ws = await open();
    const seq = [F(0, 'fragment1'), F(TEXT, 'fragment2', { fin: false }), F(0, 'fragment3')];
    await write(ws, [...seq, ...seq]);
    await expectClose(ws, 1002);
  });
  test('5.18 text in 2 fragments, both with opcode text -> 1002', async () => {
    const ws = await open();
    await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(TEXT, 'fragment2')]);
    await expectClose(ws, 1002);
  });
  for (const [what, second] of [
    ['binary', F(BINARY, 'x')],
    ['unfinished text', F(TEXT, 'x', { fin: false })],
    ['unfinished binary', F(BINARY, 'x', { fin: false })],
  ]) {
    test(`5.18 variant: ${what} after an unfinished text -> 1002`, async () => {
      const ws = await open();
      await write(ws, [F(TEXT, 'fragment1', { fin: false }), second], 'frames');
      await expectClose(ws, 1002);
    });
  }

  for (const [num, chop] of [['5.19', 'one'], ['5.20', 'frames']]) {
    test(`${num} text in 5 fragments, 2 pings between, a 100 ms pause (${chop})`, async () => {
      const ws = await open();
      await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(0, 'fragment2', { fin: false }), F(PING, 'pongme 1!')], chop);
      await expectFrame(ws, PONG, 'pongme 1!'); // answered during the pause
      await sleep(100);
      await write(ws, [F(0, 'fragment3', { fin: false }), F(0, 'fragment4', { fin: false }), F(PING, 'pongme 2!'),
        F(0, 'fragment5')], chop);
      await expectFrame(ws, PONG, 'pongme 2!');
      await expectMessage(ws, TEXT, 'fragment1fragment2fragment3fragment4fragment5');
      await closeNormally(ws);
    });
  }
});

// ---- 6 UTF-8 --------------------------------------------------------------------

describe('6 UTF-8 handling', () => {
  const KOSME = hex('cebae1bdb9cf83cebcceb5'); // κόσμε

  test('6.1.1-6.1.3 empty text message, empty fragments, empty fragments around a payload', async () => {
    const ws = await open();
    ws.send(TEXT, '');
    await expectMessage(ws, TEXT, '');
    await write(ws, [F(TEXT, '', { fin: false }), F(0, '', { fin: false }), F(0, '')]);
    await expectMessage(ws, TEXT, '');
    await write(ws, [F(TEXT, '', { fin: false }), F(0, 'middle frame payload', { fin: false }), F(0, '')]);
    await expectMessage(ws, TEXT, 'middle frame payload');
    await closeNormally(ws);
  });

  const valid = [
    ['6.2.1', 'Hello-µ@ßöäüàá-UTF-8!!'],
    ['6.5.1', KOSME],
    ['6.6.2', hex('ceba')], ['6.6.5', hex('cebae1bdb9')], ['6.6.8', hex('cebae1bdb9cf83')],
    ['6.6.10', hex('cebae1bdb9cf83cebc')],
    ['6.7.1', hex('00')], ['6.7.2', hex('c280')], ['6.7.3', hex('e0a080')], ['6.7.4', hex('f0908080')],
    ['6.9.1', hex('7f')], ['6.9.2', hex('dfbf')], ['6.9.3', hex('efbfbf')], ['6.9.4', hex('f48fbfbf')],
    ['6.11.1', hex('ed9fbf')], ['6.11.2', hex('ee8080')], ['6.11.3', hex('efbfbd')], ['6.11.4', hex('f48fbfbf')],
    ['6.22.x noncharacters U+FFFE..U+10FFFF', hex('efbfbe efbfbf f09fbfbe f09fbfbf f0afbfbe f0afbfbf f48fbfbe f48fbfbf')],
    ['6.22.x noncharacters U+FDD0..U+FDEF', Buffer.from(Array.from({ length: 32 }, (_, i) => String.fromCodePoint(0xfdd0 + i)).join(''))],
    ['6.23.x U+FFFD and friends', hex('efbfbd 61 efbfbd efbfbd 62')],
    ['languages', 'English, Ελληνικά, Русский, 中文, 日本語, العربية, עברית, हिन्दी, 한국어, ไทย, ქართული, Ἀρχαῖα'],
    ['4-byte sequences', '𝄞 𝕬 😀 🏳️‍🌈 𠜎 𐍈 \u{10FFFF}'],
  ];
  test(`6.x ${valid.length} valid UTF-8 texts echo byte-exact (one frame, then one fragment per octet)`, async () => {
    const ws = await open();
    for (const [num, t] of valid) {
      const p = Buffer.from(t);
      ws.send(TEXT, p);
      await expectMessage(ws, TEXT, p).catch((e) => { e.message = `${num}: ${e.message}`; throw e; });
      // 6.2.3/6.2.4 style: frames ending inside code points
      const frames = [...p].map((b, i) => F(i === 0 ? TEXT : 0, Buffer.from([b]), { fin: i === p.length - 1 }));
      if (frames.length) {
        await write(ws, frames);
        await expectMessage(ws, TEXT, p).catch((e) => { e.message = `${num} per octet: ${e.message}`; throw e; });
      }
    }
    await closeNormally(ws);
  });

  test('6.x every 2-, 3- and 4-byte code point boundary split across 2 fragments (and with an empty fragment) echoes', async () => {
    const ws = await open();
    for (const cp of ['µ', 'ß', '\u07FF', '€', '\u0800', '\uFFFF', '한', '𝄞', '😀', '\u{10000}', '\u{10FFFF}']) {
      const p = Buffer.from(`a${cp}b`);
      for (let k = 1; k < p.length; k++) {
        await write(ws, [F(TEXT, p.subarray(0, k), { fin: false }), F(0, p.subarray(k))]);
        await expectMessage(ws, TEXT, p);
        await write(ws, [F(TEXT, p.subarray(0, k), { fin: false }), F(0, '', { fin: false }), F(0, p.subarray(k))]);
        await expectMessage(ws, TEXT, p);
      }
    }
    await closeNormally(ws);
  });

  const invalid = [
    ['6.3.1', 'cebae1bdb9cf83cebcceb5 eda080 656469746564'],
    ['6.6.1', 'ce'], ['6.6.3', 'cebae1'], ['6.6.4', 'cebae1bd'], ['6.6.6', 'cebae1bdb9cf'],
    ['6.6.7', 'cebae1bdb9cf83ce'], ['6.6.9', 'cebae1bdb9cf83cebcce'],
    ['6.8.1', 'f888808080'], ['6.8.2', 'fc8480808080'],
    ['6.10.1', 'f7bfbfbf'], ['6.10.2', 'fbbfbfbfbf'], ['6.10.3', 'fdbfbfbfbfbf'],
    ['6.11.5', 'f4908080'],
    ['6.12.1', '80'], ['6.12.2', 'bf'], ['6.12.3', '80bf'], ['6.12.4', '80bf80'], ['6.12.5', '80bf80bf'],
    ['6.12.6', '80bf80bf80'], ['6.12.7', '80bf80bf80bf'],
    ['6.12.8', Buffer.from(Array.from({ length: 64 }, (_, i) => 0x80 + i)).toString('hex')],
    ['6.13.1', Buffer.from(Array.from({ length: 32 }, (_, i) => [0xc0 + i, 0x20]).flat()).toString('hex')],
    ['6.13.2', Buffer.from(Array.from({ length: 16 }, (_, i) => [0xe0 + i, 0x20]).flat()).toString('hex')],
    ['6.13.3', Buffer.from(Array.from({ length: 8 }, (_, i) => [0xf0 + i, 0x20]).flat()).toString('hex')],
    ['6.13.4', 'f820f920fa20fb20'], ['6.13.5', 'fc20fd20'],
    ['6.14.1', 'c0'], ['6.14.2', 'e080'], ['6.14.3', 'f08080'], ['6.14.4', 'f8808080'], ['6.14.5', 'fc80808080'],
    ['6.14.6', 'df'], ['6.14.7', 'efbf'], ['6.14.8', 'f7bfbf'], ['6.14.9', 'fbbfbfbf'], ['6.14.10', 'fdbfbfbfbf'],
    ['6.15.1', 'c0 e080 f08080 f8808080 fc80808080 df efbf f7bfbf fbbfbfbf fdbfbfbfbf'],
    ['6.16.1', 'fe'], ['6.16.2', 'ff'], ['6.16.3', 'fefeffff'],
    ['6.17.1', 'c0af'], ['6.17.2', 'e080af'], ['6.17.3', 'f08080af'], ['6.17.4', 'f8808080af'], ['6.17.5', 'fc80808080af'],
    ['6.18.1', 'c1bf'], ['6.18.2', 'e09fbf'], ['6.18.3', 'f08fbfbf'], ['6.18.4', 'f887bfbfbf'], ['6.18.5', 'fc83bfbfbfbf'],
    ['6.19.1', 'c080'], ['6.19.2', 'e08080'], ['6.19.3', 'f0808080'], ['6.19.4', 'f880808080'], ['6.19.5', 'fc8080808080'],
    ['6.20.1', 'eda080'], ['6.20.2', 'edadbf'], ['6.20.3', 'edae80'], ['6.20.4', 'edafbf'], ['6.20.5', 'edb080'],
    ['6.20.6', 'edbe80'], ['6.20.7', 'edbfbf'],
    ['6.21.1', 'eda080edb080'], ['6.21.2', 'eda080edbfbf'], ['6.21.3', 'edadbfedb080'], ['6.21.4', 'edadbfedbfbf'],
    ['6.21.5', 'edae80edb080'], ['6.21.6', 'edae80edbfbf'], ['6.21.7', 'edafbfedb080'], ['6.21.8', 'edafbfedbfbf'],
    ['> U+10FFFF after valid text', '48656c6c6f f4908080 21'],
    ['truncated 4-byte at the end after valid text', '48656c6c6f f09f98'],
  ];
  for (const [num, h] of invalid) {
    test(`${num} invalid UTF-8 text ${h.length > 40 ? `${h.replace(/ /g, '').slice(0, 36)}...` : h} -> 1007`, async () => {
      const ws = await open();
      ws.send(TEXT, hex(h));
      await expectClose(ws, 1007);
    });
  }

  test('6.x invalid UTF-8 in the final fragment, and a sequence truncated by the end of the message -> 1007', async () => {
    for (const frames of [
      [F(TEXT, 'valid ', { fin: false }), F(0, hex('eda080'))],
      [F(TEXT, hex('ce'), { fin: false }), F(0, '')], // the message ends inside a code point
      [F(TEXT, hex('e282'), { fin: false }), F(0, hex('41'))], // a code point "completed" by a non-continuation
      [F(TEXT, hex('f0'), { fin: false }), F(0, hex('9f'), { fin: false }), F(0, hex('98'))],
    ]) {
      const ws = await open();
      await write(ws, frames);
      await expectClose(ws, 1007);
    }
  });

  // bytes that are invalid whatever follows: a server must fail on the
  // fragment that holds them, without waiting for the rest of the message
  const definite = ['c0af', 'c1', 'e080', 'eda0', 'f490', 'f5', 'f8', 'fe', 'ff', '80', 'cebae1bdb9cf83cebcceb5 eda080',
    '48656c6c6f f4908080'];
  for (const h of definite) {
    test(`6.4.x fail fast: first fragment ${h} of an unfinished message -> 1007 before the rest is sent`, async () => {
      const ws = await open();
      ws.send(TEXT, Buffer.concat([Buffer.from('ok '), hex(h)]), { fin: false });
      await expectClose(ws, 1007);
    });
  }

  for (const [num, part1, part2, part3] of [
    ['6.4.1', KOSME, hex('f4908080'), Buffer.from('edited')],
    ['6.4.2', Buffer.concat([KOSME, hex('f4')]), hex('90'), Buffer.concat([hex('8080'), Buffer.from('edited')])],
  ]) {
    test(`${num} 3 fragments, the 2nd invalid: 1007 right after it, before the 3rd is sent`, async () => {
      const ws = await open();
      ws.send(TEXT, part1, { fin: false });
      await sleep(50);
      assert.equal(ws.frames.length, 0, 'nothing back after a valid first fragment');
      assert.equal(ws.ended, false);
      ws.send(0, part2, { fin: false });
      await expectClose(ws, 1007);
      ws.send(0, part3); // too late: nothing more comes back
      await sleep(20);
      assert.equal(ws.bytes, ws.seen);
    });
  }

  for (const [num, part1, part2, part3] of [
    ['6.4.3', KOSME, hex('f4908080'), Buffer.from('edited')],
    ['6.4.4', Buffer.concat([KOSME, hex('f4')]), hex('90'), Buffer.concat([hex('8080'), Buffer.from('edited')])],
  ]) {
    test(`${num} one frame in 3 chops, the 2nd invalid -> 1007 (fail fast inside a frame, or after it)`, async () => {
      // Autobahn: failing inside the frame is OK, failing once the frame is
      // complete is NON-STRICT; both are accepted here
      const ws = await open();
      const frame = F(TEXT, Buffer.concat([part1, part2, part3]));
      const hdr = frame.length - part1.length - part2.length - part3.length;
      ws.sendRaw(frame.subarray(0, hdr + part1.length));
      await sleep(50);
      assert.equal(ws.frames.length, 0);
      ws.sendRaw(frame.subarray(hdr + part1.length, hdr + part1.length + part2.length));
      await sleep(200);
      if (!ws.frames.length) ws.sendRaw(frame.subarray(hdr + part1.length + part2.length));
      await expectClose(ws, 1007);
    });
  }
});

// ---- 7 close handling ------------------------------------------------------------

describe('7 close handling', () => {
  test('7.1.1 text echoed, then a normal close', async () => {
    const ws = await open();
    ws.send(TEXT, 'Hello World!');
    await expectMessage(ws, TEXT, 'Hello World!');
    await closeNormally(ws);
  });
  test('7.1.2 close twice: one Close back, nothing else', async () => {
    const ws = await open();
    await write(ws, [F(CLOSE, closePayload(1000)), F(CLOSE, closePayload(1000))]);
    await expectClose(ws, 1000);
  });
  test('7.1.3 ping after close: no pong', async () => {
    const ws = await open();
    await write(ws, [F(CLOSE, closePayload(1000)), F(PING, 'Hello World!')]);
    await expectClose(ws, 1000);
  });
  test('7.1.4 text after close: no echo', async () => {
    const ws = await open();
    await write(ws, [F(CLOSE, closePayload(1000)), F(TEXT, 'Hello World!')]);
    await expectClose(ws, 1000);
  });
  test('7.1.5 fragment, close, continuation: Close echoed, no message', async () => {
    const ws = await open();
    await write(ws, [F(TEXT, 'fragment1', { fin: false }), F(CLOSE, closePayload(1000)), F(0, 'fragment2')]);
    await expectClose(ws, 1000);
  });
  test('7.1.6 256 KiB text, close, ping: the echo (if any) is whole, then Close, no pong', async () => {
    // Autobahn: the echo may be dropped when the Close is processed before the
    // text's write completes; either outcome passes, a partial echo does not
    const ws = await open();
    const p = Buffer.from('BAsd7&jh23'.repeat(26215).slice(0, 262144));
    await write(ws, [F(TEXT, p), F(CLOSE, closePayload(1000)), F(PING, 'Hello World!')]);
    const f = await ws.next(10000 * SLOW);
    assert.ok(f);
    if (f.opcode === TEXT) {
      assert.ok(f.fin && f.payload.equals(p), 'echo differs');
      await expectClose(ws, 1000);
    } else {
      assert.equal(f.opcode, CLOSE);
      assert.equal(f.code, 1000);
      await ws.waitEnd();
      assert.equal(ws.bytes, ws.seen);
    }
  });

  // the server's half of a close handshake: our Close echoed, then its FIN
  // (no reset) and nothing after the Close
  const closedCleanly = async (ws) => {
    const f = await ws.next(10000 * SLOW);
    assert.ok(f && f.opcode === CLOSE && f.code === 1000, 'the Close echoed');
    await ws.waitEnd();
    assert.equal(ws.error, null, `the connection was reset: ${ws.error?.code}`);
    assert.ok(ws.fin, 'the server closed with a FIN');
    assert.equal(ws.frames.length, 0, 'frames after the Close');
  };
  test('7.x a peer that sends its Close and keeps TCP open: Close, then FIN (no reset); the server lets go after its 2 s linger', async () => {
    const stats = async () => (await (await fetch(`http://127.0.0.1:${srv.port}/stats`)).json()).connections;
    const before = await stats();
    const peers = [];
    for (let i = 0; i < 3; i++) {
      const ws = await rawWs(srv.port, '/ws', { allowHalfOpen: true });
      conns.add(ws);
      peers.push(ws);
    }
    for (const ws of peers) ws.send(CLOSE, closePayload(1000));
    for (const ws of peers) {
      await closedCleanly(ws);
    }
    // our sides are still open: the server waits for our FINs (bytes we
    // sent after the Close would make its close(2) reset us), for its
    // linger and not longer
    assert.ok(peers.every((ws) => !ws.socket.writableEnded));
    await until(async () => (await stats()) === before, 6000 * SLOW, `the server to drop the half-open connections (${before} before)`);
    for (const ws of peers) ws.socket.end();
  });
  test('7.x a peer that writes after its Close: Close, then FIN (no reset), and the late bytes are discarded', async () => {
    const ws = await rawWs(srv.port, '/ws', { allowHalfOpen: true });
    conns.add(ws);
    ws.sendRaw(Buffer.concat([F(CLOSE, closePayload(1000)), F(TEXT, 'late'), F(PING, 'late')]));
    await closedCleanly(ws);
    ws.socket.end();
  });

  test('7.3.1 close with an empty payload: Close empty or 1000', async () => {
    const ws = await open();
    ws.send(CLOSE);
    await expectClose(ws, [1005, 1000]);
  });
  test('7.3.2 close with a 1-octet payload -> 1002', async () => {
    const ws = await open();
    ws.send(CLOSE, 'a');
    await expectClose(ws, 1002);
  });
  test('7.3.3 close with code 1000, no reason', async () => {
    const ws = await open();
    ws.send(CLOSE, closePayload(1000));
    await expectClose(ws, 1000);
  });
  test('7.3.4 close with code 1000 and a reason', async () => {
    const ws = await open();
    ws.send(CLOSE, closePayload(1000, 'Hello World!'));
    await expectClose(ws, 1000);
  });
  test('7.3.5 close with code and a 123-octet reason (125 total)', async () => {
    const ws = await open();
    ws.send(CLOSE, closePayload(1000, '*'.repeat(123)));
    await expectClose(ws, 1000);
  });
  test('7.3.6 close with code and a 124-octet reason (126 total) -> 1002', async () => {
    const ws = await open();
    ws.send(CLOSE, closePayload(1000, '*'.repeat(124)));
    await expectClose(ws, 1002);
  });
  test('7.5.1 close with an invalid UTF-8 reason -> 1007', async () => {
    const ws = await open();
    ws.send(CLOSE, Buffer.concat([closePayload(1000), hex('cebae1bdb9cf83cebcceb5 eda080 656469746564')]));
    await expectClose(ws, 1007);
  });
  test('7.5.x close reasons: valid multi-byte reason accepted; truncated sequence at the end -> 1007', async () => {
    let ws = await open();
    ws.send(CLOSE, closePayload(1000, 'κόσμε 𝄞'));
    await expectClose(ws, 1000);
    ws = await open();
    ws.send(CLOSE, Buffer.concat([closePayload(1000, 'ok'), hex('e282')]));
    await expectClose(ws, 1007);
  });

  // Autobahn's numbering; 1012-1014 (registered later) as 7.7.x
  const validCodes = [['7.7.1', 1000], ['7.7.2', 1001], ['7.7.3', 1002], ['7.7.4', 1003], ['7.7.5', 1007], ['7.7.6', 1008],
    ['7.7.7', 1009], ['7.7.8', 1010], ['7.7.9', 1011], ['7.7.x', 1012], ['7.7.x', 1013], ['7.7.x', 1014],
    ['7.7.10', 3000], ['7.7.11', 3999], ['7.7.12', 4000], ['7.7.13', 4999]];
  for (const [num, code] of validCodes) {
    test(`${num} close with valid code ${code}: echoed`, async () => {
      const ws = await open();
      ws.send(CLOSE, closePayload(code));
      await expectClose(ws, code);
    });
  }

  const invalidCodes = [['7.9.1', 0], ['7.9.2', 999], ['7.9.3', 1004], ['7.9.4', 1005], ['7.9.5', 1006], ['7.9.x', 1015],
    ['7.9.6', 1016], ['7.9.7', 1100], ['7.9.8', 2000], ['7.9.9', 2999]];
  for (const [num, code] of invalidCodes) {
    test(`${num} close with invalid code ${code} -> 1002`, async () => {
      const ws = await open();
      ws.send(CLOSE, closePayload(code));
      await expectClose(ws, 1002);
    });
  }
});

// ---- 9 limits and performance (bounded) ------------------------------------------

function openWs() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.wsUrl}/ws`, { perMessageDeflate: false, maxPayload: 0 });
    conns.add(ws);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeWs(ws) {
  return new Promise((resolve) => { ws.once('close', (code) => resolve(code)); ws.close(1000); });
}

/** `n` bytes of valid UTF-8 (16-byte pattern with 2-, 3- and 4-byte code points). */
function utf8Text(n) {
  const unit = Buffer.from('abc€𝄞µxyzw');
  assert.equal(unit.length, 16);
  assert.equal(n % 16, 0);
  return Buffer.alloc(n, unit);
}

describe('9 limits (bounded)', () => {
  const sizes = [[1, 64 << 10], [2, 256 << 10], [3, 1 << 20], [4, 4 << 20], [6, 16 << 20]];
  test('9.1.x text 64 KiB, 256 KiB, 1 MiB, 4 MiB, 16 MiB in single frames echo byte-exact', async () => {
    const ws = await openWs();
    for (const [, n] of sizes) {
      const p = utf8Text(n);
      const r = await roundTrip(ws, p, false);
      assert.equal(r.isBinary, false);
      assert.ok(r.d.equals(p), `text ${n}`);
    }
    assert.equal(await closeWs(ws), 1000);
  });
  test('9.2.x binary 64 KiB, 256 KiB, 1 MiB, 4 MiB, 16 MiB in single frames echo byte-exact', async () => {
    const ws = await openWs();
    for (const [, n] of sizes) {
      const p = crypto.randomBytes(n);
      const r = await roundTrip(ws, p, true);
      assert.equal(r.isBinary, true);
      assert.ok(r.d.equals(p), `binary ${n}`);
    }
    assert.equal(await closeWs(ws), 1000);
  });

  for (const [sec, op] of [['9.3', TEXT], ['9.4', BINARY]]) {
    test(`${sec}.x 4 MiB ${op === TEXT ? 'text' : 'binary'} in 64 B, 256 B, 1 KiB, 4 KiB, 64 KiB fragments`, async () => {
      const ws = await open();
      const p = op === TEXT ? utf8Text(4 << 20) : crypto.randomBytes(4 << 20);
      for (const size of [64, 256, 1024, 4096, 65536]) {
        const frames = [];
        for (let i = 0; i < p.length; i += size) {
          frames.push(F(i === 0 ? op : 0, p.subarray(i, i + size), { fin: i + size >= p.length }));
        }
        await write(ws, frames);
        await expectMessage(ws, op, p, 30000 * SLOW);
      }
      await closeNormally(ws);
    });
  }

  test('9.5.x/9.6.x 1 MiB text and binary in 64 B .. 4 KiB TCP chops', async () => {
    const ws = await open();
    for (const [op, p] of [[TEXT, utf8Text(1 << 20)], [BINARY, crypto.randomBytes(1 << 20)]]) {
      for (const chop of [64, 512, 4096]) {
        const frame = F(op, p);
        // many small writes without a yield each: the kernel coalesces some
        for (let i = 0; i < frame.length; i += chop) ws.sendRaw(frame.subarray(i, i + chop));
        await expectMessage(ws, op, p, 30000 * SLOW);
      }
    }
    await closeNormally(ws);
  });

  test('9.7.x/9.8.x 1000 sequential round trips of small text and binary messages', async () => {
    const ws = await openWs();
    for (let i = 0; i < 1000; i++) {
      const bin = i & 1;
      const p = bin ? crypto.randomBytes(i % 257) : Buffer.from(`message ${i} κόσμε`.repeat(1 + (i % 5)));
      const r = await roundTrip(ws, p, !!bin);
      assert.equal(r.isBinary, !!bin);
      assert.ok(r.d.equals(p), `round trip ${i}`);
    }
    assert.equal(await closeWs(ws), 1000);
  });
});

// ---- 10 misc ----------------------------------------------------------------------

describe('10 miscellaneous', () => {
  test('10.1.1 65536-octet text in 1300-octet fragments echoes', async () => {
    const ws = await open();
    const p = Buffer.from('*'.repeat(65536));
    const frames = [];
    for (let i = 0; i < p.length; i += 1300) frames.push(F(i === 0 ? TEXT : 0, p.subarray(i, i + 1300), { fin: i + 1300 >= p.length }));
    await write(ws, frames);
    await expectMessage(ws, TEXT, p);
    await closeNormally(ws);
  });
});
