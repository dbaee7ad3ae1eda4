// redis_acl.test.mjs — the shipped least-privilege ACL (deploy/redis/users.acl)
// loaded into a real redis-server, plain and over TLS: each role can send
// exactly what its programs send and gets NOPERM for the rest; the default
// user and wrong passwords are refused; TLS refuses an unverifiable server
// certificate and, when required, a client without a certificate. The real
// agents run under the worker credentials: sluice-worker (libsluice, its job
// lists as sluice-jobs) and sluice-bullmq (BullMQ as the example user of
// docs/security.md).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import * as bullmq from 'bullmq';
import { attach } from 'sluice-bullmq';
import { BACKEND, BUILD, ROOT, waitFor, tempDir } from './harness.mjs';
import { startSecureRedis, createCa, USERS_ACL } from './redis_tls.mjs';

const skip = BACKEND !== 'sqlite' && 'the ACL file does not depend on the store backend';

// The shipped users plus the example BullMQ user that docs/security.md gives
// (BullMQ's keys belong to BullMQ's own connection, not to any Sluice user).
function aclWithBullmqUser() {
  const line = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8').match(/^user bullmq .*$/m);
  assert.ok(line, 'docs/security.md has no example `user bullmq ...` line');
  const dir = tempDir('sluice-acl-');
  const file = join(dir, 'users.acl');
  writeFileSync(file, `${readFileSync(USERS_ACL, 'utf8').trimEnd()}\n${line[0]}\n`);
  return { dir, file };
}

const NOPERM = /NOPERM/;

// redis-cli as a role: the reply, or a failure with its error text.
function ok(r, role, ...cmd) {
  const out = r.cli(role, ...cmd);
  assert.equal(out.status, 0, `${role}: ${cmd.join(' ')} should be allowed: ${out.stderr}${out.stdout}`);
  return out.stdout.trim();
}
function refused(r, role, re, ...cmd) {
  const out = r.cli(role, ...cmd);
  assert.notEqual(out.status, 0, `${role}: ${cmd.join(' ')} should be refused, got ${out.stdout}`);
  assert.match(out.stderr + out.stdout, re, `${role}: ${cmd.join(' ')}`);
}

// A connection of the test's own, closed in after().
function connect(r, role, clients) {
  // No ready check (INFO): sluiced's user has no INFO, and hiredis sends none.
  const c = new Redis({ ...r.redisOptions(role), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: null,
    enableReadyCheck: false });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

for (const tls of [false, true]) {
  describe(`users.acl over ${tls ? 'TLS' : 'plain TCP'}`, { skip }, () => {
    let r;
    const clients = [];
    let acl;
    before(async () => {
      acl = aclWithBullmqUser();
      r = await startSecureRedis({ tls, aclFile: acl.file });
    });
    after(async () => {
      for (const c of clients) c.disconnect();
      await r?.stop();
      if (acl) rmSync(acl.dir, { recursive: true, force: true });
    });

    test('sluice-worker reads the desired state, publishes reports, nothing else', async () => {
      ok(r, 'sluiced', 'HSET', 'sluice:desired', 'build', '{"queue":"build","concurrency":3,"version":1}');
      assert.match(ok(r, 'worker', 'HGETALL', 'sluice:desired'), /"concurrency":3/);
      assert.match(ok(r, 'worker', 'HGET', 'sluice:desired', 'build'), /"version":1/);
      assert.match(ok(r, 'worker', 'PUBLISH', 'sluice:reports', '{}'), /^\d+$/);
      assert.equal(ok(r, 'worker', 'PING'), 'PONG');
      assert.equal(ok(r, 'worker', 'SELECT', '0'), 'OK');
      assert.equal(ok(r, 'worker', 'CLIENT', 'SETNAME', 'w1'), 'OK');
      assert.match(ok(r, 'worker', 'INFO', 'server'), /redis_version:/);   // ioredis' ready check
      // the control channel is sluiced's: no forged scaling notices, no writes
      refused(r, 'worker', NOPERM, 'PUBLISH', 'sluice:scaling', '{"queue":"build","concurrency":99,"version":9}');
      refused(r, 'worker', NOPERM, 'PUBLISH', 'sluice:alerts', 'x');
      refused(r, 'worker', NOPERM, 'HSET', 'sluice:desired', 'build', 'x');
      refused(r, 'worker', NOPERM, 'HDEL', 'sluice:desired', 'build');
      refused(r, 'worker', NOPERM, 'DEL', 'sluice:desired');
      refused(r, 'worker', NOPERM, 'SET', 'sluice:owner', 'x');
      refused(r, 'worker', NOPERM, 'GET', 'sluice:owner');
      // nor other workers' reports, nor anything outside the control channel
      refused(r, 'worker', NOPERM, 'SUBSCRIBE', 'sluice:reports');
      refused(r, 'worker', NOPERM, 'PSUBSCRIBE', 'sluice:*');
      refused(r, 'worker', NOPERM, 'GET', 'elsewhere');
      refused(r, 'worker', NOPERM, 'HGETALL', 'elsewhere');
      refused(r, 'worker', NOPERM, 'LLEN', 'sluice:q:build:wait');
      refused(r, 'worker', NOPERM, 'LPUSH', 'sluice:q:build:wait', '{}');
      refused(r, 'worker', NOPERM, 'KEYS', '*');
      refused(r, 'worker', NOPERM, 'SCAN', '0');
      refused(r, 'worker', NOPERM, 'FLUSHALL');
      refused(r, 'worker', NOPERM, 'CONFIG', 'GET', '*');
      refused(r, 'worker', NOPERM, 'ACL', 'LIST');
      refused(r, 'worker', NOPERM, 'EVAL', 'return 1', '0');
      refused(r, 'worker', NOPERM, 'MULTI');
      // SUBSCRIBE blocks redis-cli: a real client subscribes instead
      const sub = connect(r, 'worker', clients);
      await sub.connect();
      assert.equal(await sub.subscribe('sluice:scaling'), 1);
      const sub2 = connect(r, 'worker', clients);
      await sub2.connect();
      await assert.rejects(sub2.subscribe('sluice:reports'), NOPERM);
    });

    test('sluiced can send every command the engine needs, on its keys and channels only', async () => {
      assert.equal(ok(r, 'sluiced', 'PING'), 'PONG');
      assert.equal(ok(r, 'sluiced', 'SELECT', '0'), 'OK');
      assert.equal(ok(r, 'sluiced', 'CLIENT', 'SETNAME', 'sluiced'), 'OK');
      // --take-over-prefix: the store's identity in <prefix>:owner
      assert.equal(ok(r, 'sluiced', 'SET', 'sluice:owner', 'store-a', 'NX'), 'OK');
      assert.equal(ok(r, 'sluiced', 'SET', 'sluice:owner', 'store-b', 'NX'), '');
      assert.equal(ok(r, 'sluiced', 'GET', 'sluice:owner'), 'store-a');
      assert.equal(ok(r, 'sluiced', 'SET', 'sluice:owner', 'store-b'), 'OK');
      // desired state: write, read, repair, forget
      ok(r, 'sluiced', 'DEL', 'sluice:desired');
      ok(r, 'sluiced', 'HSET', 'sluice:desired', 'a', '1', 'b', '2');
      assert.equal(ok(r, 'sluiced', 'HGET', 'sluice:desired', 'a'), '1');
      assert.match(ok(r, 'sluiced', 'HGETALL', 'sluice:desired'), /^a\n1\nb\n2$/);
      assert.equal(ok(r, 'sluiced', 'HDEL', 'sluice:desired', 'b'), '1');
      assert.match(ok(r, 'sluiced', 'PUBLISH', 'sluice:scaling', '{}'), /^\d+$/);
      assert.match(ok(r, 'sluiced', 'PUBLISH', 'sluice:alerts', '{}'), /^\d+$/);
      // the hash write and the notice in one step: MULTI/EXEC (bus.c) and a script
      const c = connect(r, 'sluiced', clients);
      await c.connect();
      const got = await c.multi().hset('sluice:desired', 'a', '3').publish('sluice:scaling', '{}').exec();
      assert.deepEqual(got.map(([err]) => err), [null, null]);
      const script = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return redis.call('PUBLISH', ARGV[3], ARGV[2])";
      assert.match(ok(r, 'sluiced', 'EVAL', script, '1', 'sluice:desired', 'a', '4', 'sluice:scaling'), /^\d+$/);
      const sha = ok(r, 'sluiced', 'SCRIPT', 'LOAD', script);
      assert.match(ok(r, 'sluiced', 'EVALSHA', sha, '1', 'sluice:desired', 'a', '5', 'sluice:scaling'), /^\d+$/);
      assert.equal(ok(r, 'sluiced', 'HGET', 'sluice:desired', 'a'), '5');
      // the fencing token beside the hash (bus.c's write script)
      assert.equal(ok(r, 'sluiced', 'SET', 'sluice:fence', '7'), 'OK');
      assert.equal(ok(r, 'sluiced', 'GET', 'sluice:fence'), '7');
      refused(r, 'worker', NOPERM, 'SET', 'sluice:fence', '0');
      // a script is held to the same rules as the user who runs it (Redis
      // 7.0 says so with ERR, not NOPERM, from inside a script)
      const inScript = /NOPERM|The user executing the script can't/;
      refused(r, 'sluiced', inScript, 'EVAL', "return redis.call('SET', 'elsewhere', 'x')", '0');
      refused(r, 'sluiced', inScript, 'EVAL', "return redis.call('PUBLISH', 'sluice:reports', 'x')", '0');
      refused(r, 'sluiced', inScript, 'EVAL', "return redis.call('FLUSHALL')", '0');
      // depth, read-only: the Sluice layout and BullMQ's (telemetry.c)
      ok(r, 'jobs', 'LPUSH', 'sluice:q:build:wait', '{}');
      assert.equal(ok(r, 'sluiced', 'LLEN', 'sluice:q:build:wait'), '1');
      for (const s of ['active', 'failed']) assert.equal(ok(r, 'sluiced', 'LLEN', `sluice:q:build:${s}`), '0');
      for (const s of ['wait', 'paused', 'active']) assert.equal(ok(r, 'sluiced', 'LLEN', `bull:emails:${s}`), '0');
      for (const s of ['delayed', 'prioritized', 'waiting-children', 'failed', 'completed'])
        assert.equal(ok(r, 'sluiced', 'ZCARD', `bull:emails:${s}`), '0');
      refused(r, 'sluiced', NOPERM, 'LPUSH', 'sluice:q:build:wait', '{}');
      refused(r, 'sluiced', NOPERM, 'RPOP', 'sluice:q:build:wait');
      refused(r, 'sluiced', NOPERM, 'DEL', 'bull:emails:wait');
      refused(r, 'sluiced', NOPERM, 'HSET', 'bull:emails:meta', 'concurrency', '1');
      refused(r, 'sluiced', NOPERM, 'GET', 'elsewhere');
      refused(r, 'sluiced', NOPERM, 'PUBLISH', 'sluice:reports', '{}');   // no forged reports
      refused(r, 'sluiced', NOPERM, 'KEYS', '*');
      refused(r, 'sluiced', NOPERM, 'FLUSHALL');
      refused(r, 'sluiced', NOPERM, 'CONFIG', 'SET', 'appendonly', 'yes');
      refused(r, 'sluiced', NOPERM, 'ACL', 'SETUSER', 'sluiced', '+@all');
      refused(r, 'sluiced', NOPERM, 'SCRIPT', 'FLUSH');
      // the reports channel, and only it, by subscription
      const sub = connect(r, 'sluiced', clients);
      await sub.connect();
      assert.equal(await sub.subscribe('sluice:reports'), 1);
      const sub2 = connect(r, 'sluiced', clients);
      await sub2.connect();
      await assert.rejects(sub2.subscribe('sluice:scaling'), NOPERM);
      ok(r, 'sluiced', 'DEL', 'sluice:desired');
      assert.equal(ok(r, 'sluiced', 'HGETALL', 'sluice:desired'), '');
    });

    test('sluice-jobs runs the reference worker\'s job lists and nothing of the control channel', () => {
      ok(r, 'jobs', 'LPUSH', 'sluice:q:j:wait', '{"id":"1"}', '{"id":"2"}');
      assert.equal(ok(r, 'jobs', 'BLMOVE', 'sluice:q:j:wait', 'sluice:q:j:active', 'RIGHT', 'LEFT', '1'), '{"id":"1"}');
      assert.equal(ok(r, 'jobs', 'LPUSH', 'sluice:q:j:failed', '{"id":"1"}'), '1');
      assert.equal(ok(r, 'jobs', 'LTRIM', 'sluice:q:j:failed', '0', '999'), 'OK');
      assert.equal(ok(r, 'jobs', 'LREM', 'sluice:q:j:active', '1', '{"id":"1"}'), '1');
      assert.equal(ok(r, 'jobs', 'LLEN', 'sluice:q:j:wait'), '1');
      refused(r, 'jobs', NOPERM, 'HGETALL', 'sluice:desired');
      refused(r, 'jobs', NOPERM, 'HSET', 'sluice:desired', 'j', 'x');
      refused(r, 'jobs', NOPERM, 'PUBLISH', 'sluice:scaling', 'x');
      refused(r, 'jobs', NOPERM, 'PUBLISH', 'sluice:reports', 'x');
      refused(r, 'jobs', NOPERM, 'SET', 'sluice:owner', 'x');
      refused(r, 'jobs', NOPERM, 'LLEN', 'bull:emails:wait');
      refused(r, 'jobs', NOPERM, 'FLUSHALL');
    });

    test('the default user is off, wrong passwords are refused, the admin user can administer', () => {
      refused(r, { user: null, password: null }, /NOAUTH/, 'PING');
      refused(r, { user: 'default', password: '' }, /WRONGPASS|NOAUTH/, 'PING');
      refused(r, { user: 'default', password: 'nopass' }, /WRONGPASS/, 'PING');
      for (const role of ['sluiced', 'worker', 'jobs', 'admin'])
        refused(r, { ...r.users[role], password: `${r.users[role].password}x` }, /WRONGPASS/, 'PING');
      // a password is one user's, not another's
      refused(r, { user: 'sluiced', password: r.users.worker.password }, /WRONGPASS/, 'PING');
      assert.match(ok(r, 'admin', 'ACL', 'LIST'), /user sluice-worker on #[0-9a-f]{64} /);
      assert.match(ok(r, 'admin', 'ACL', 'WHOAMI'), /^sluice-admin$/);
    });

    test('sluice-worker (libsluice) runs as sluice-worker, its job lists as sluice-jobs', async () => {
      const queue = `ref${tls ? 't' : 'p'}`;
      const tlsArgs = tls ? ['--redis-ca', r.caFile] : [];
      const seen = [];
      const sub = connect(r, 'sluiced', clients);
      await sub.connect();
      sub.on('message', (ch, m) => { const j = JSON.parse(m); if (j.queue === queue) seen.push(j); });
      await sub.subscribe('sluice:reports');
      const w = spawn(join(BUILD, 'sluice-worker'), ['--queue', queue, '--id', `${queue}-w`, '--heartbeat-ms', '100',
        '--redis', r.url('worker'), '--jobs-redis', r.url('jobs'), ...tlsArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      w.stderr.on('data', (d) => { stderr += d; });
      const exited = new Promise((res) => w.on('exit', (code, signal) => res({ code, signal })));
      try {
        assert.ok(await waitFor(() => seen.some((m) => m.event === 'heartbeat'), 5000), `no heartbeat: ${stderr}`);
        const payload = JSON.stringify({ queue, concurrency: 3, version: 2, at: new Date().toISOString() });
        ok(r, 'sluiced', 'HSET', 'sluice:desired', queue, payload);
        ok(r, 'sluiced', 'PUBLISH', 'sluice:scaling', payload);
        assert.ok(await waitFor(() => seen.some((m) => m.event === 'ack' && m.version === 2 && m.concurrency === 3), 5000),
          `no ack: ${stderr}`);
        execFileSync(join(BUILD, 'sluice-worker'), ['--produce', '4', '--sleep-ms', '5', '--queue', queue,
          '--redis', r.url('jobs'), ...tlsArgs], { stdio: 'ignore', timeout: 10000 });
        assert.ok(await waitFor(() => seen.some((m) => m.completed === 4), 5000), `jobs not run: ${stderr}`);
      } finally {
        w.kill('SIGTERM');
      }
      assert.deepEqual(await exited, { code: 0, signal: null });
      assert.ok(await waitFor(() => seen.some((m) => m.event === 'bye'), 2000), 'no bye');
      assert.doesNotMatch(stderr, /NOPERM|WRONGPASS|NOAUTH/);
    });

    test('sluice-bullmq follows the desired state under the worker credentials', async () => {
      const warnings = [];
      const warn = console.warn;
      console.warn = (...a) => { warnings.push(a.join(' ')); };
      // BullMQ's own connection is the job system's business: the example
      // user of docs/security.md; sluice-bullmq gets the control-channel user.
      const queue = `acl${tls ? 't' : 'p'}`;
      const connection = { ...r.redisOptions('bullmq'), maxRetriesPerRequest: null };
      const done = [];
      const worker = new bullmq.Worker(queue, async (job) => { done.push(job.data.n); }, { connection, concurrency: 1 });
      const errors = [];
      worker.on('error', (e) => errors.push(e.message));
      const q = new bullmq.Queue(queue, { connection });
      const seen = [];
      const sub = connect(r, 'sluiced', clients);
      await sub.connect();
      sub.on('message', (ch, m) => seen.push(JSON.parse(m)));
      await sub.subscribe('sluice:reports');
      const handle = attach(worker, { queue, redis: r.redisOptions('worker'), id: `${queue}-w`, heartbeatMs: 100, pollMs: 200 });
      try {
        assert.ok(await waitFor(() => seen.some((m) => m.event === 'heartbeat'), 5000), 'no heartbeat under the worker user');
        const payload = JSON.stringify({ queue, concurrency: 6, version: 1, at: new Date().toISOString() });
        const pub = connect(r, 'sluiced', clients);
        await pub.connect();
        await pub.multi().hset('sluice:desired', queue, payload).publish('sluice:scaling', payload).exec();
        assert.ok(await waitFor(() => seen.some((m) => m.event === 'ack' && m.version === 1 && m.concurrency === 6), 5000),
          `no ack: ${JSON.stringify(seen.slice(-3))}`);
        assert.equal(worker.concurrency, 6);
        // BullMQ works under its user: jobs go in and are run
        await q.addBulk([1, 2, 3].map((n) => ({ name: 'j', data: { n } })));
        assert.ok(await waitFor(() => done.length === 3, 5000), `BullMQ ran ${done.length} of 3 jobs: ${errors.join('; ')}`);
        assert.deepEqual(errors, []);
        assert.deepEqual(warnings.filter((w) => /NOPERM|ready check/i.test(w)), []);
        // and that user has nothing of the control channel
        refused(r, 'bullmq', NOPERM, 'HSET', 'sluice:desired', queue, 'x');
        refused(r, 'bullmq', NOPERM, 'HGET', 'sluice:desired', queue);
        refused(r, 'bullmq', NOPERM, 'PUBLISH', 'sluice:scaling', 'x');
        refused(r, 'bullmq', NOPERM, 'KEYS', '*');
      } finally {
        console.warn = warn;
        await handle.close();
        await worker.close();
        await q.close();
      }
    });
  });
}

// The error a verifying client (Node's TLS, through ioredis) reports.
async function nodeTlsError(options) {
  const c = new Redis({ ...options, lazyConnect: true, retryStrategy: null, maxRetriesPerRequest: 0 });
  let seen = '';
  c.on('error', (e) => { seen ||= `${e.code || ''} ${e.message}`; });
  await assert.rejects(c.connect());
  c.disconnect();
  return seen;
}

describe('TLS verification', { skip }, () => {
  test('a server certificate from another CA is refused (redis-cli and Node)', async () => {
    const r = await startSecureRedis();
    try {
      const other = createCa(r.dir, 'other', '/CN=Someone else');
      const out = r.cli({ ...r.users.worker, caFile: other.caFile }, 'PING');
      assert.notEqual(out.status, 0);
      assert.match(out.stderr, /certificate verify failed/);
      assert.equal(r.cli('worker', 'PING').stdout.trim(), 'PONG');
      // a plain client on the TLS port gets nothing
      const plain = r.cli({ ...r.users.worker, tls: false, timeout: 5000 }, 'PING');
      assert.notEqual(plain.stdout.trim(), 'PONG');
      assert.match(await nodeTlsError(r.redisOptions({ ...r.users.worker, caFile: other.caFile })),
        /self[- ]signed|unable to (get|verify)|certificate/i);
    } finally {
      await r.stop();
    }
  });

  test('a certificate for another host name is refused by a verifying client', async () => {
    const r = await startSecureRedis({ serverSan: 'DNS:elsewhere.example' });
    try {
      assert.match(await nodeTlsError(r.redisOptions('worker')), /altnames|ERR_TLS_CERT_ALTNAME_INVALID/i);
      assert.equal(r.cli('worker', 'PING').stdout.trim(), 'PONG');   // redis-cli does not check the name
    } finally {
      await r.stop();
    }
  });

  test('with --tls-auth-clients yes a client without a certificate is refused', async () => {
    const r = await startSecureRedis({ requireClientCert: true });
    try {
      assert.notEqual(r.cli({ ...r.users.worker, cert: null, key: null }, 'PING').stdout.trim(), 'PONG');
      assert.equal(r.cli({ ...r.users.worker, cert: r.clientCert, key: r.clientKey }, 'PING').stdout.trim(), 'PONG');
      assert.equal(r.cli('worker', 'PING').stdout.trim(), 'PONG');   // cli() presents it by default here
    } finally {
      await r.stop();
    }
  });
});

test('a prefix other than sluice is substituted into the ACL', { skip }, async () => {
  const r = await startSecureRedis({ tls: false, prefix: 'acme' });
  try {
    assert.equal(r.cli('sluiced', 'HSET', 'acme:desired', 'a', '1').stdout.trim(), '1');
    assert.equal(r.cli('worker', 'HGET', 'acme:desired', 'a').stdout.trim(), '1');
    assert.match(r.cli('worker', 'HGET', 'sluice:desired', 'a').stderr, NOPERM);
    assert.match(r.cli('worker', 'PUBLISH', 'acme:scaling', 'x').stderr, NOPERM);
  } finally {
    await r.stop();
  }
});
