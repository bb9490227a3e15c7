// `wsedge` command line: version, help, and every invalid flag or
// environment value rejected with exit code 2 and a message naming it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli, startServer } from './server.mjs';

test('--version prints "wsedge 0.1.0"', async () => {
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'wsedge 0.1.0\n');
});

test('--help lists every flag and its environment variable', async () => {
  const r = await runCli(['serve', '--help']);
  assert.equal(r.code, 0);
  for (const s of ['--listen', '--threads', '--static', '--log-level', '--max-connections',
    '--max-frame-size', '--max-message-size', '--max-write-buffer-size', '--idle-timeout',
    '--ping-interval', '--session-timeout', '--handshake-timeout', 'WSEDGE_WEBSOCKET_TIMEOUT',
    '--send-timeout', 'WSEDGE_SEND_TIMEOUT',
    'WSEDGE_LISTEN', 'WSEDGE_THREADS', 'WSEDGE_MAX_MESSAGE_SIZE']) assert.ok(r.stdout.includes(s), s);
});

test('no command and unknown commands exit 2', async () => {
  assert.equal((await runCli([])).code, 2);
  const r = await runCli(['serv']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'serv'/);
});

const bad = [
  [['--threads', '0'], /invalid --threads '0'/],
  [['--threads', '65'], /invalid --threads '65'/],
  [['--threads', 'two'], /invalid --threads 'two'/],
  [['--listen', '127.0.0.1'], /invalid --listen '127\.0\.0\.1'/],
  [['--listen', '127.0.0.1:70000'], /invalid --listen '127\.0\.0\.1:70000': port/],
  [['--listen=::1:80'], /invalid --listen '::1:80'/],
  [['--log-level', 'loud'], /invalid --log-level 'loud'/],
  [['--max-frame-size', '-5'], /invalid --max-frame-size '-5'/],
  [['--max-message-size', '12q'], /invalid --max-message-size '12q'/],
  [['--max-write-buffer-size', '0'], /invalid --max-write-buffer-size '0'/],
  [['--idle-timeout', '1.5'], /invalid --idle-timeout '1\.5'/],
  [['--send-timeout', 'soon'], /invalid --send-timeout 'soon': expected a non-negative integer/],
  [['--send-timeout', '-1'], /invalid --send-timeout '-1'/],
  [['--send-timeout', '2000001'], /invalid --send-timeout '2000001': must be 0\.\.2000000/],
  [['--send-timeout'], /option --send-timeout needs a value/],
  [['--handshake-timeout', '0'], /invalid --handshake-timeout '0'/],
  [['--static', '/nonexistent/dir'], /invalid --static '\/nonexistent\/dir'/],
  [['--allow-origin', 'example.com'], /invalid --allow-origin 'example\.com'/],
  [['--frobnicate'], /unknown option '--frobnicate'/],
  [['--threads'], /option --threads needs a value/],
];
for (const [args, re] of bad) {
  test(`serve ${args.join(' ')} -> exit 2`, async () => {
    const r = await runCli(['serve', ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
  });
}

const badEnv = [
  ['WSEDGE_THREADS', 'lots'], ['WSEDGE_WEBSOCKET_TIMEOUT', 'soon'], ['WSEDGE_IDLE_TIMEOUT', ''],
  ['WSEDGE_PING_INTERVAL', '-1'], ['WSEDGE_MAX_MESSAGE_SIZE', '2g'], ['WSEDGE_MAX_FRAME_SIZE', 'x'],
  ['WSEDGE_MAX_WRITE_BUFFER_SIZE', '1t'], ['WSEDGE_MAX_CONNECTIONS', '1e3'], ['WSEDGE_LOG_LEVEL', 'trace'],
  ['WSEDGE_LISTEN', 'localhost'], ['WSEDGE_STATIC', '/nonexistent'], ['WSEDGE_SEND_TIMEOUT', '1.5'],
];
for (const [name, value] of badEnv) {
  test(`${name}=${JSON.stringify(value)} -> exit 2 naming the variable`, async () => {
    const r = await runCli(['serve'], { env: { [name]: value } });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`invalid ${name} '${value}'`), r.stderr);
  });
}

test('flags win over the environment', async () => {
  // the env value alone would be rejected; the flag overrides a valid env
  const srv = await startServer(['--threads', '1'], { env: { WSEDGE_THREADS: '3', WSEDGE_LOG_LEVEL: 'info' } });
  try {
    const r = await fetch(`${srv.url}/stats`);
    assert.equal((await r.json()).threads, 1);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  }
});

test('serve ignores SIGPIPE (the program opts in; the library itself never does)', async () => {
  // a peer that vanishes mid-write must cost an EPIPE, not the process
  const { readFileSync } = await import('node:fs');
  const srv = await startServer([]);
  try {
    const line = readFileSync(`/proc/${srv.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('SigIgn:'));
    const ignored = BigInt(`0x${line.split(/\s+/)[1]}`);
    assert.equal((ignored >> 12n) & 1n, 1n, `SIGPIPE (13) not ignored: ${line}`);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  }
});

test('environment values apply when no flag is given', async () => {
  const srv = await startServer([], { env: { WSEDGE_THREADS: '3' } });
  try {
    const r = await fetch(`${srv.url}/stats`);
    assert.equal((await r.json()).threads, 3);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  }
});

test('a port already in use (even by another wsedge) -> exit 1, not a shared port', async () => {
  const srv = await startServer(['--threads', '2']);
  try {
    const r = await runCli(['serve', '--listen', `127.0.0.1:${srv.port}`, '--threads', '2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  } finally {
    assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  }
});

test('the soft fd limit is raised to the hard one; --max-connections above it is warned about', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const hard = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  if (hard === 'unlimited' || Number(hard) <= 256 || Number(hard) >= 9999000) {
    t.skip(`hard fd limit ${hard}: nothing to raise from 256 here`); // reported as skipped, not passed
    return;
  }
  const mc = Number(hard) + 1000;
  const { BIN } = await import('./server.mjs');
  const r = spawnSync('bash', ['-c', 'ulimit -S -n 256 && exec "$0" serve --listen 127.0.0.1:0 --max-connections $1 & pid=$!; sleep 1; kill -TERM $pid; wait $pid', BIN, String(mc)],
    { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`info \\d+ threads?, fd limit ${hard},`));
  assert.match(r.stderr, new RegExp(`warn --max-connections ${mc} is above what ulimit -n ${hard} allows`));
});
