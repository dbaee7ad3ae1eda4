// secure_redis.test.mjs — the control channel as production runs it: a real
// redis-server with a TLS port, certificates from a throw-away CA, and the
// shipped least-privilege ACL users (deploy/redis/users.acl). sluiced and
// sluice-worker connect as their own users; refusals are one clear line;
// forged messages change nothing; a prefix has one owner; nothing reaches
// Redis before sluiced is up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { BACKEND, BUILD, SLUICED, startServer, putScaling, waitFor, sleep, tempDir as harnessTempDir } from './harness.mjs';
import { startSecureRedis, createCa } from './redis_tls.mjs';
import { Worker, Queue } from 'bullmq';
import { attach } from 'sluice-bullmq';

const skip = BACKEND !== 'sqlite' && 'the channel does not depend on the store backend';
const WORKER = join(BUILD, 'sluice-worker');
const POLICY = `
defaults { default = 4, min = 1, max = 16, max_step = 16 }
queue "build" { }
queue "ingest" { }
`;
let r;

// Scratch directories of this file, removed at the end.
const scratch = [];
function tempDir(prefix) {
  const d = harnessTempDir(prefix);
  scratch.push(d);
  return d;
}

before(async () => { if (!skip) r = await startSecureRedis(); });
after(async () => {
  if (r) await r.stop();
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

// sluiced's flags for the TLS Redis; the password comes from the
// environment, not the command line.
function sluicedRedis() {
  return ['--redis', r.url('sluiced', { withPassword: false }), '--redis-ca', r.caFile];
}
function withPassword(role) {
  return { ...process.env, SLUICE_REDIS_PASSWORD: r.users[role].password };
}

function startWorker(id, extra = []) {
  const args = ['--queue', 'build', '--id', id, '--redis', r.url('worker'), '--jobs-redis', r.url('jobs'),
    '--redis-ca', r.caFile, '--heartbeat-ms', '200', ...extra];
  const proc = spawn(WORKER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const w = { proc, log: '' };
  proc.stderr.on('data', (d) => { w.log += d; });
  w.exited = new Promise((res) => proc.on('exit', (code) => res(code)));
  w.stop = async () => { proc.kill('SIGTERM'); return w.exited; };
  return w;
}

// Run a program to its end; { code, stdout, stderr }.
function runToEnd(cmd, args, env = process.env, ms = 15000) {
  return new Promise((resolveP) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('exit', (code, signal) => { clearTimeout(t); resolveP({ code: code ?? signal, stdout, stderr }); });
  });
}

// Every key of the prefix with its value, as the admin sees them.
function redisState() {
  const keys = r.cli('admin', '--scan', '--pattern', 'sluice:*').stdout.trim().split('\n').filter(Boolean).sort();
  return keys.map((k) => {
    const type = r.cli('admin', 'TYPE', k).stdout.trim();
    const v = type === 'hash' ? r.cli('admin', 'HGETALL', k).stdout : r.cli('admin', 'GET', k).stdout;
    return `${k}=${v}`;
  }).join('\n');
}

test('a change propagates over TLS with ACL users and is acknowledged', { skip }, async () => {
  r.cli('admin', 'FLUSHALL');
  const srv = await startServer({ policies: POLICY, extraArgs: sluicedRedis(), envVars: withPassword('sluiced') });
  const w = startWorker('tls-worker-1');
  try {
    assert.ok(await waitFor(async () => {
      const s = await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.admin });
      return s.json?.redis === 'up' && s.json.queues.find((q) => q.queue === 'build')?.workers.length === 1;
    }, 10000), `worker never showed up:\n${w.log}\n${srv.log.slice(-2000)}`);
    const put = await putScaling(srv, 'build', { desired_concurrency: 7, reason: 'over TLS', wait_ms: 5000 });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual([put.json.acks.acknowledged, put.json.acks.complete], [1, true], put.text);
    const h = JSON.parse(r.cli('admin', 'HGET', 'sluice:desired', 'build').stdout);
    assert.equal(h.concurrency, 7);
    // sluiced claimed the prefix for its store.
    assert.match(r.cli('admin', 'GET', 'sluice:owner').stdout.trim(), /^[0-9a-f]{32}$/);
    assert.doesNotMatch(srv.log, new RegExp(r.users.sluiced.password));
  } finally {
    await w.stop();
    await srv.cleanup();
  }
});

for (const [name, args, env, pattern] of [
  ['plain redis:// to a TLS port', () => ['--redis', r.url('sluiced', { tls: false })], () => process.env,
    /redis: .*(closed|TLS)/i],
  ['a wrong password', () => ['--redis', r.url({ ...r.users.sluiced, password: 'wrong-password' }), '--redis-ca', r.caFile],
    () => process.env, /redis: AUTH refused: WRONGPASS/],
  ['an unverifiable certificate', () => {
    const other = createCa(tempDir('sluice-otherca-'), 'other', '/CN=Some other CA');
    return ['--redis', r.url('sluiced'), '--redis-ca', other.caFile];
  }, () => process.env, /redis: TLS: the certificate of 127\.0\.0\.1:\d+ is not trusted/],
]) {
  test(`sluiced refuses to start with ${name}, in one clear line`, { skip }, async () => {
    const dir = tempDir();
    const db = `sqlite:${join(dir, 's.db')}`;
    const res = await runToEnd(SLUICED, ['serve', '--listen', '127.0.0.1:0', '--db', db,
      '--policies', join(import.meta.dirname, '..', '..', 'policies'), ...args()], env());
    assert.equal(res.code, 2, res.stderr);
    const lines = res.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0], pattern);
    assert.doesNotMatch(res.stderr, /wrong-password/);
    assert.doesNotMatch(res.stderr, /listening/);
    // The worker says the same and stops.
    const wres = await runToEnd(WORKER, ['--queue', 'build', ...args()], env(), 10000);
    assert.equal(wres.code, 2, wres.stderr);
    assert.match(wres.stderr, pattern);
  });
}

test('forged messages change nothing and a forging worker never acknowledges', { skip }, async () => {
  r.cli('admin', 'FLUSHALL');
  const srv = await startServer({ policies: POLICY, extraArgs: sluicedRedis(), envVars: withPassword('sluiced') });
  const w = startWorker('forged-1', ['--max', '16']);
  const snapshotOf = async () => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.admin }))
    .json.queues.find((q) => q.queue === 'build').workers.find((x) => x.id === 'forged-1');
  try {
    assert.ok(await waitFor(async () => (await snapshotOf())?.state === 'ok', 10000), w.log);
    const ok = await putScaling(srv, 'build', { desired_concurrency: 5, reason: 'baseline', wait_ms: 5000 });
    assert.equal(ok.json.acks.complete, true, ok.text);
    // Worker credentials cannot publish the control channel at all.
    const denied = r.cli('worker', 'PUBLISH', 'sluice:scaling', '{}');
    assert.match(denied.stdout + denied.stderr, /NOPERM/);
    // Whoever can (an admin here): a version beyond 2^53 is ignored...
    r.cli('admin', 'PUBLISH', 'sluice:scaling', JSON.stringify({ queue: 'build', concurrency: 1000, version: '9223372036854775807' }).replace('"9223372036854775807"', '9223372036854775807'));
    r.cli('admin', 'PUBLISH', 'sluice:scaling', JSON.stringify({ queue: 'build', concurrency: -3, version: 1000 }));
    await sleep(600);
    let me = await snapshotOf();
    assert.equal(me.concurrency, 5);
    assert.equal(me.state, 'ok');
    assert.match(w.log, /ignored a scaling message with version 9223372036854775807/);
    // ...a sane but never issued version is applied by the worker, and
    // sluiced calls the worker invalid: it never counts as acknowledged.
    r.cli('admin', 'PUBLISH', 'sluice:scaling', JSON.stringify({ queue: 'build', concurrency: 3, version: 100000 }));
    assert.ok(await waitFor(async () => (await snapshotOf())?.state === 'invalid', 5000), JSON.stringify(await snapshotOf()));
    const next = await putScaling(srv, 'build', { desired_concurrency: 6, reason: 'after the forgery', wait_ms: 1500 });
    assert.equal(next.status, 200, next.text);
    assert.deepEqual([next.json.acks.expected, next.json.acks.acknowledged, next.json.acks.complete], [1, 0, false], next.text);
    me = await snapshotOf();
    assert.equal(me.state, 'invalid');
    const metrics = await srv.request('GET', '/metrics', { token: srv.tokens.admin });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^sluice_workers_by_state\{queue="build",state="invalid"\} 1$/m);
    assert.match(metrics.text, /^sluice_workers_by_state\{queue="build",state="ok"\} 0$/m);
  } finally {
    await w.stop();
    await srv.cleanup();
  }
});

test('a second store on an owned prefix refuses to start and leaves Redis untouched', { skip }, async () => {
  r.cli('admin', 'FLUSHALL');
  const first = await startServer({ policies: POLICY, extraArgs: sluicedRedis(), envVars: withPassword('sluiced') });
  try {
    await putScaling(first, 'build', { desired_concurrency: 9, reason: 'first store' });
    assert.ok(await waitFor(() => JSON.parse(r.cli('admin', 'HGET', 'sluice:desired', 'build').stdout || '{}').concurrency === 9, 5000));
    const owner = r.cli('admin', 'GET', 'sluice:owner').stdout.trim();
    const before = redisState();
    const dir = tempDir();
    const db = `sqlite:${join(dir, 'other.db')}`;
    const policyDir = first.policyDir;
    const res = await runToEnd(SLUICED, ['serve', '--listen', '127.0.0.1:0', '--db', db, '--policies', policyDir,
      ...sluicedRedis()], withPassword('sluiced'));
    assert.equal(res.code, 2, res.stderr);
    const line = res.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(line.length, 1, res.stderr);
    assert.match(line[0], new RegExp(`belongs to store ${owner}, this database is store [0-9a-f]{32}`));
    await sleep(300);
    assert.equal(redisState(), before, 'the refused store wrote to Redis');
    // On purpose, with --take-over-prefix, the other store takes it.
    const second = await startServer({ policies: POLICY, extraArgs: [...sluicedRedis(), '--take-over-prefix'],
      envVars: withPassword('sluiced') });
    try {
      assert.ok(await waitFor(() => r.cli('admin', 'GET', 'sluice:owner').stdout.trim() !== owner, 5000));
      assert.ok(await waitFor(() => /took over the redis prefix/.test(second.log), 3000), second.log);
      // The first one notices within its next owner check and stops writing.
      assert.ok(await waitFor(() => /belongs to another store; not writing/.test(first.log), 4000),
        first.log.slice(-2000));
    } finally { await second.cleanup(); }
  } finally { await first.cleanup(); }
});

test('a sluiced that cannot bind its port leaves Redis untouched', { skip }, async () => {
  r.cli('admin', 'FLUSHALL');
  const busy = net.createServer();
  await new Promise((res) => busy.listen(0, '127.0.0.1', res));
  const port = busy.address().port;
  try {
    const dir = tempDir();
    const res = await runToEnd(SLUICED, ['serve', '--listen', `127.0.0.1:${port}`, '--db', `sqlite:${join(dir, 's.db')}`,
      '--policies', join(import.meta.dirname, '..', '..', 'policies'), ...sluicedRedis()], withPassword('sluiced'));
    assert.notEqual(res.code, 0, res.stderr);
    await sleep(300);
    assert.equal(redisState(), '', 'sluiced wrote to Redis although it never served');
    assert.equal(r.cli('admin', 'DBSIZE').stdout.trim(), '0');
  } finally { busy.close(); }
});

test('a BullMQ worker with sluice-bullmq acknowledges a change made through sluiced, over TLS', { skip }, async () => {
  r.cli('admin', 'FLUSHALL');
  const srv = await startServer({ policies: POLICY, extraArgs: sluicedRedis(), envVars: withPassword('sluiced') });
  // BullMQ's own connection is the job system's business (here the admin);
  // sluice-bullmq follows Sluice as the least-privileged sluice-worker user.
  const connection = r.redisOptions('admin', { maxRetriesPerRequest: null });
  const queue = new Queue('build', { connection });
  const worker = new Worker('build', async () => {}, { connection, concurrency: 1 });
  worker.on('error', () => {});
  const handle = attach(worker, { queue: 'build', id: 'bullmq-tls-1', redis: r.url('worker'), redisCa: r.caFile,
    heartbeatMs: 200, logger: { warn() {}, error() {} } });
  try {
    await handle.ready;
    assert.ok(await waitFor(async () => {
      const snap = await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.admin });
      return snap.json.queues.find((q) => q.queue === 'build').workers.some((w) => w.id === 'bullmq-tls-1');
    }, 10000), srv.log.slice(-2000));
    const put = await putScaling(srv, 'build', { desired_concurrency: 5, reason: 'bullmq over TLS', wait_ms: 5000 });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual([put.json.acks.acknowledged, put.json.acks.complete], [1, true], put.text);
    assert.equal(worker.concurrency, 5);
  } finally {
    await handle.close();
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    await srv.cleanup();
  }
});

test('mutual TLS: sluiced presents its client certificate, and without one is refused', { skip }, async () => {
  const m = await startSecureRedis({ requireClientCert: true });
  try {
    const dir = tempDir();
    const base = ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(dir, 's.db')}`,
      '--policies', join(import.meta.dirname, '..', '..', 'policies'), '--redis', m.url('sluiced'), '--redis-ca', m.caFile];
    const refused = await runToEnd(SLUICED, base);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^sluiced: redis: /m);
    const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', m.url('sluiced'), '--redis-ca', m.caFile,
      '--redis-cert', m.clientCert, '--redis-key', m.clientKey] });
    try {
      assert.ok(await waitFor(async () => (await srv.request('GET', '/readyz')).status === 200, 5000), srv.log.slice(-2000));
    } finally { await srv.cleanup(); }
  } finally { await m.stop(); }
});

test('the host name is verified: a certificate for localhost is refused at 127.0.0.1', { skip }, async () => {
  const h = await startSecureRedis({ serverSan: 'DNS:localhost' });
  try {
    const dir = tempDir();
    const args = (host) => ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(dir, `${host}.db`)}`,
      '--policies', join(import.meta.dirname, '..', '..', 'policies'),
      '--redis', h.url('sluiced').replace('127.0.0.1', host), '--redis-ca', h.caFile];
    const wrong = await runToEnd(SLUICED, args('127.0.0.1'));
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /not trusted: .*(IP address mismatch|mismatch)/);
    const srv = await startServer({ policies: POLICY,
      extraArgs: ['--redis', h.url('sluiced').replace('127.0.0.1', 'localhost'), '--redis-ca', h.caFile] });
    try {
      assert.ok(await waitFor(async () => (await srv.request('GET', '/readyz')).status === 200, 5000), srv.log.slice(-2000));
    } finally { await srv.cleanup(); }
  } finally { await h.stop(); }
});
