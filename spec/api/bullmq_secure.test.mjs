// bullmq_secure.test.mjs — sluice-bullmq against Redis as production runs
// it: TLS with a private CA, and the least-privilege ACL users of
// deploy/redis/users.acl (spec/api/redis_tls.mjs). sluice-bullmq connects as
// the `sluice-worker` user, which may only read sluice:desired, subscribe to
// sluice:scaling and publish on sluice:reports; BullMQ's own connection
// needs `bull:*` keys, which no user of the shipped file but the admin may
// touch, so it runs as `sluice-admin`. The desired state is written as the
// `sluiced` user, the way sluiced writes it (HSET + PUBLISH in MULTI/EXEC).
// No sluiced is needed: nothing here depends on the store backend.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import * as bullmq6 from 'bullmq';
import * as bullmq5 from 'bullmq5';
import { attach, CONCURRENCY_LIMIT } from 'sluice-bullmq';
import { BACKEND, sleep, waitFor } from './harness.mjs';
import { startSecureRedis, createCa } from './redis_tls.mjs';

const skip = BACKEND !== 'sqlite' && 'sluice-bullmq over TLS does not depend on the store backend';

let r;              // TLS, ACL, client certificate optional
let mtls;           // TLS, ACL, client certificate required; certificate names only DNS:localhost
let sluiced;        // the test writing as the `sluiced` user
let reportSub;      // the test listening on sluice:reports as the `sluiced` user
const reports = [];
const tmp = mkdtempSync(join(tmpdir(), 'sluice-bullmq-secure-'));

before(async () => {
  if (skip) return;
  r = await startSecureRedis();
  mtls = await startSecureRedis({ requireClientCert: true, serverSan: 'DNS:localhost' });
  // the sluiced user may not run INFO: no ioredis ready check
  sluiced = new Redis(r.redisOptions('sluiced', { maxRetriesPerRequest: 1, enableReadyCheck: false }));
  reportSub = new Redis(r.redisOptions('sluiced', { enableReadyCheck: false }));
  await reportSub.subscribe('sluice:reports');
  reportSub.on('message', (ch, m) => { try { reports.push(JSON.parse(m)); } catch { /* not ours */ } });
});
after(async () => {
  sluiced?.disconnect();
  reportSub?.disconnect();
  await r?.stop();
  await mtls?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

// What sluiced does for a change: HSET and PUBLISH in one MULTI/EXEC.
async function setDesired(queue, concurrency, version) {
  const payload = JSON.stringify({ queue, concurrency, version, at: new Date().toISOString() });
  const res = await sluiced.multi().hset('sluice:desired', queue, payload).publish('sluice:scaling', payload).exec();
  for (const [err] of res) assert.equal(err, null);
}
// A forged or broken message: raw text, so numbers JSON cannot hold exactly
// (9223372036854775807) arrive as they were written.
async function forge(raw, { hash = false, queue } = {}) {
  if (hash) assert.equal((await sluiced.hset('sluice:desired', queue, raw)), 0);
  else await sluiced.publish('sluice:scaling', raw);
}
function capture() {
  const logs = { warn: [], error: [] };
  return { logs, logger: { warn: (m) => logs.warn.push(m), error: (m) => logs.error.push(m) } };
}
// A stand-in for a BullMQ worker where only the connection matters.
function idleWorker(queue) {
  return new bullmq6.Worker(queue, async () => {}, {
    connection: r.redisOptions('admin', { maxRetriesPerRequest: null }), autorun: false, concurrency: 1,
  });
}
const ofWorker = (id) => reports.filter((m) => m.worker === id);

test('the ACL users are what this test relies on', { skip }, () => {
  const said = (res) => res.stdout + res.stderr;
  // the worker user cannot touch BullMQ's keys: BullMQ needs its own user
  assert.match(said(r.cli('worker', 'LLEN', 'bull:q:wait')), /NOPERM/);
  assert.match(said(r.cli('worker', 'HSET', 'sluice:desired', 'x', '1')), /NOPERM/);
  assert.match(said(r.cli('worker', 'PUBLISH', 'sluice:scaling', 'x')), /NOPERM/);
  assert.equal(r.cli('worker', 'HGET', 'sluice:desired', 'x').status, 0);
  assert.equal(r.cli('admin', 'LLEN', 'bull:q:wait').stdout.trim(), '0');
});

for (const [label, mq, queue] of [['bullmq 6', bullmq6, 'sec6'], ['bullmq 5', bullmq5, 'sec5']]) {
  test(`${label}: over TLS as the sluice-worker user, the worker follows the desired state and acknowledges`, { skip }, async () => {
    const connection = r.redisOptions('admin', { maxRetriesPerRequest: null });
    const q = new mq.Queue(queue, { connection });
    let running = 0;
    let peak = 0;
    let done = 0;
    const worker = new mq.Worker(queue, async () => {
      running++;
      peak = Math.max(peak, running);
      await sleep(40);
      running--;
      done++;
    }, { connection, concurrency: 1 });
    worker.on('error', () => {});
    const id = `${queue}-w1`;
    const { logs, logger } = capture();
    const handle = attach(worker, { queue, id, redis: r.url('worker'), redisCa: r.caFile, heartbeatMs: 100, pollMs: 300, logger });
    try {
      await handle.ready;
      assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'heartbeat'), 3000), 'no heartbeat');
      await setDesired(queue, 6, 1);
      assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'ack' && m.version === 1), 3000), 'no ack for version 1');
      const ack = ofWorker(id).find((m) => m.event === 'ack' && m.version === 1);
      assert.equal(ack.concurrency, 6);
      assert.equal(ack.agent, 'sluice-bullmq/0.2');
      assert.equal(worker.concurrency, 6);
      assert.equal(handle.version, 1);
      // the value is really in force: BullMQ (over TLS, as admin) runs 6 at once
      await q.addBulk(Array.from({ length: 60 }, (_, i) => ({ name: 'j', data: { i } })));
      assert.ok(await waitFor(() => done === 60, 15000), `${done} of 60 jobs done`);
      assert.equal(peak, 6);
      await setDesired(queue, 2, 2);
      assert.ok(await waitFor(() => worker.concurrency === 2 && handle.version === 2, 3000));
      assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'ack' && m.version === 2 && m.concurrency === 2), 3000));
      assert.deepEqual(logs, { warn: [], error: [] });
      assert.equal(handle.error, null);
    } finally {
      await handle.close();
      await worker.close();
      await q.obliterate({ force: true });
      await q.close();
    }
    assert.ok(await waitFor(() => ofWorker(id).at(-1)?.event === 'bye', 2000), 'no bye');
  });
}

test('insane versions and concurrencies change nothing, are logged once a minute, and later versions still apply', { skip }, async () => {
  const queue = 'secforge';
  const max = 8;
  const worker = idleWorker(queue);
  const id = 'secforge-w1';
  const { logs, logger } = capture();
  const handle = attach(worker, { queue, id, max, redis: r.url('worker'), redisCa: r.caFile, heartbeatMs: 100, pollMs: 200, logger });
  const realNow = Date.now;
  try {
    await handle.ready;
    await setDesired(queue, 4, 5);
    assert.ok(await waitFor(() => handle.version === 5 && worker.concurrency === 4, 3000));
    assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'ack' && m.version === 5), 3000));
    const before = ofWorker(id).filter((m) => m.event !== 'heartbeat').length;
    const forged = [
      `{"queue":"${queue}","concurrency":6,"version":9223372036854775807}`,    // int64 max: not a safe integer
      `{"queue":"${queue}","concurrency":6,"version":9007199254740992}`,       // 2^53
      `{"queue":"${queue}","concurrency":${CONCURRENCY_LIMIT + 1000},"version":6}`,  // 1000 above the hard maximum
      `{"queue":"${queue}","concurrency":-3,"version":6}`,
      `{"queue":"${queue}","concurrency":6,"version":-1}`,
      `{"queue":"${queue}","concurrency":2.5,"version":6}`,
      `{"queue":"${queue}","concurrency":6,"version":6.5}`,
      `{"queue":"${queue}","concurrency":"6","version":6}`,
      `{"queue":"${queue}","concurrency":6,"version":"6"}`,
      `{"queue":"${queue}","concurrency":1e400,"version":6}`,
      `not json`,
    ];
    for (const m of forged) await forge(m);
    await sleep(400);
    assert.equal(worker.concurrency, 4, 'a forged message changed the concurrency');
    assert.equal(handle.version, 5, 'a forged message moved the version');
    assert.equal(ofWorker(id).filter((m) => m.event !== 'heartbeat').length, before, 'a forged message was acknowledged');
    assert.ok(ofWorker(id).filter((m) => m.event === 'heartbeat').slice(-3).every((m) => m.version === 5 && m.concurrency === 4));
    assert.equal(handle.ignored, forged.length);
    assert.equal(logs.warn.length, 1, `logged more than once a minute:\n${logs.warn.join('\n')}`);
    assert.match(logs.warn[0], /ignored a desired state from sluice:scaling for queue secforge: version is not an integer in 0\.\.2\^53-1/);

    // a forged entry in the hash itself: ignored at every re-read, still not logged again
    await forge(`{"queue":"${queue}","concurrency":-1,"version":7}`, { hash: true, queue });
    assert.ok(await waitFor(() => handle.ignored >= forged.length + 2, 3000), 'the poll did not re-read the hash');
    assert.equal(worker.concurrency, 4);
    assert.equal(handle.version, 5);
    assert.equal(logs.warn.length, 1);

    // a minute later, one line again, with the number not logged meanwhile
    await sluiced.hset('sluice:desired', queue, JSON.stringify({ queue, concurrency: 4, version: 5 }));
    await sleep(400);                          // the poll reads the repaired entry
    const suppressed = handle.ignored - 1;
    Date.now = () => realNow() + 61000;
    await forge(`{"queue":"${queue}","concurrency":6,"version":9223372036854775807}`);
    assert.ok(await waitFor(() => logs.warn.length === 2, 2000), 'no log line after a minute');
    assert.ok(logs.warn[1].endsWith(`; ${suppressed} more ignored since the last such message`), logs.warn[1]);
    Date.now = realNow;
    assert.equal(handle.version, 5);

    // the next legitimate version applies, from the channel and from the hash
    await setDesired(queue, 6, 6);
    assert.ok(await waitFor(() => handle.version === 6 && worker.concurrency === 6, 3000), 'version 6 was not applied');
    assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'ack' && m.version === 6 && m.concurrency === 6), 3000));
    await sluiced.hset('sluice:desired', queue, JSON.stringify({ queue, concurrency: 3, version: 7 }));
    assert.ok(await waitFor(() => handle.version === 7 && worker.concurrency === 3, 3000), 'version 7 from the hash was not applied');

    // above `max` but within what Sluice may ask: clamped and reported, as before
    await setDesired(queue, max + 1000, 8);
    assert.ok(await waitFor(() => handle.version === 8, 3000));
    assert.equal(worker.concurrency, max);
    assert.ok(await waitFor(() => ofWorker(id).some((m) => m.event === 'error' && m.version === 8 && m.concurrency === max), 3000));
    assert.equal(logs.error.length, 0);
  } finally {
    Date.now = realNow;
    await handle.close();
    await worker.close();
  }
});

// How often Redis saw a failed AUTH of `user` (ACL LOG counts repeats).
function authFailures(server, user) {
  const out = server.cli('admin', 'ACL', 'LOG').stdout;
  const lines = out.split('\n');
  let n = 0;
  for (let i = 0; i < lines.length; i++) {
    // entries are flat key/value lists: count, reason, context, object, username, ...
    if (lines[i] === 'count') {
      const entry = lines.slice(i, i + 20);
      const reason = entry[entry.indexOf('reason') + 1];
      const username = entry[entry.indexOf('username') + 1];
      if (reason === 'auth' && username === user) n += Number(lines[i + 1]);
    }
  }
  return n;
}

// Attach with connection settings that cannot work; expect one clear
// failure, fast, and no retrying afterwards.
async function expectLastingFailure(options, { kind, code, match }) {
  const worker = idleWorker('secfail');
  const errors = [];
  const { logs, logger } = capture();
  const t0 = Date.now();
  const handle = attach(worker, { queue: 'secfail', id: 'secfail-w1', heartbeatMs: 100, pollMs: 100, logger, ...options });
  handle.on('error', (e) => errors.push(e));
  try {
    const err = await handle.ready.then(() => null, (e) => e);
    const ms = Date.now() - t0;
    assert.ok(err, 'attach became ready');
    assert.ok(ms < 3000, `took ${ms} ms to fail`);
    assert.equal(err.kind, kind);
    assert.equal(err.code, code);
    assert.match(err.message, match);
    assert.match(err.message, /not retrying$/);
    assert.ok(err.cause instanceof Error);
    assert.equal(handle.error, err);
    await sleep(1500);                         // several retry and poll intervals
    assert.equal(errors.length, 1, `reported ${errors.length} times`);
    assert.equal(errors[0], err);
    assert.deepEqual(logs, { warn: [], error: [] });
    return err;
  } finally {
    await handle.close();
    await worker.close();
  }
}

test('a wrong password fails once, quickly, and is not retried', { skip }, async () => {
  const wrong = { ...r.users.worker, password: 'not-the-password' };
  const before = authFailures(r, 'sluice-worker');
  const err = await expectLastingFailure({ redis: r.url(wrong), redisCa: r.caFile },
    { kind: 'auth', code: 'WRONGPASS', match: /rediss:\/\/sluice-worker@127\.0\.0\.1:\d+: Redis refused the credentials \(WRONGPASS/ });
  assert.ok(!err.message.includes('not-the-password'), 'the password is in the message');
  const n = authFailures(r, 'sluice-worker') - before;
  assert.ok(n >= 1 && n <= 2, `${n} failed AUTHs: one per connection expected`);
  await sleep(1000);
  assert.equal(authFailures(r, 'sluice-worker') - before, n, 'AUTH was retried');
});

test('a server certificate that cannot be verified fails once, quickly', { skip }, async () => {
  const other = createCa(tmp, 'other', '/CN=Some other CA');
  await expectLastingFailure({ redis: r.url('worker'), redisCa: other.caFile },
    { kind: 'certificate', code: 'SELF_SIGNED_CERT_IN_CHAIN', match: /TLS certificate could not be verified/ });
  // no CA at all: Node's default trust store does not know the test CA
  await expectLastingFailure({ redis: r.url('worker') },
    { kind: 'certificate', code: 'SELF_SIGNED_CERT_IN_CHAIN', match: /redisCa/ });
  // the right CA, but a certificate for another name: the host name is checked
  await expectLastingFailure({ redis: mtls.url('worker'), redisCa: mtls.caFile, redisCert: mtls.clientCert, redisKey: mtls.clientKey },
    { kind: 'certificate', code: 'ERR_TLS_CERT_ALTNAME_INVALID', match: /127\.0\.0\.1/ });
});

test('mutual TLS: the client certificate is presented, and its absence fails clearly', { skip }, async () => {
  const url = mtls.url('worker').replace('127.0.0.1', 'localhost');
  await expectLastingFailure({ redis: url, redisCa: mtls.caFile },
    { kind: 'client-certificate', code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', match: /redisCert/ });
  const fake = idleWorker('secfail');
  const handle = attach(fake, { queue: 'secfail', redis: url, redisCa: mtls.caFile, redisCert: mtls.clientCert, redisKey: mtls.clientKey });
  try {
    await handle.ready;
  } finally {
    await handle.close();
    await fake.close();
  }
});

test('a user without the needed permissions fails once (NOPERM)', { skip }, async () => {
  await expectLastingFailure({ redis: r.url('worker'), redisCa: r.caFile, prefix: 'elsewhere' },
    { kind: 'permission', code: 'NOPERM', match: /SUBSCRIBE elsewhere:scaling/ });
});

test('password and CA from the environment: SLUICE_REDIS_PASSWORD(_FILE), SLUICE_REDIS_CA', { skip }, async () => {
  const saved = { ...process.env };
  const pwFile = join(tmp, 'worker.password');
  writeFileSync(pwFile, `${r.users.worker.password}\n`, { mode: 0o600 });
  const worker = idleWorker('secenv');
  try {
    delete process.env.SLUICE_REDIS_PASSWORD;
    process.env.SLUICE_REDIS_PASSWORD_FILE = pwFile;
    process.env.SLUICE_REDIS_CA = r.caFile;
    const url = r.url('worker', { withPassword: false });
    assert.ok(!url.includes(r.users.worker.password));
    let handle = attach(worker, { queue: 'secenv', redis: url });
    await handle.ready;
    await handle.close();
    // the variable wins over the file; a password in the URL wins over both
    process.env.SLUICE_REDIS_PASSWORD = 'wrong';
    handle = attach(worker, { queue: 'secenv', redis: url });
    handle.on('error', () => {});
    await assert.rejects(handle.ready, { code: 'WRONGPASS' });
    await handle.close();
    handle = attach(worker, { queue: 'secenv', redis: r.url('worker') });
    await handle.ready;
    await handle.close();
    // settings that cannot work are refused at attach
    assert.throws(() => attach(worker, { queue: 'secenv', redis: r.url('worker', { tls: false }) }), /needs a rediss:\/\/ \(TLS\) URL/);
    delete process.env.SLUICE_REDIS_CA;
    assert.throws(() => attach(worker, { queue: 'secenv', redis: r.url('worker'), redisCert: r.clientCert }), /needs its key/);
    assert.throws(() => attach(worker, { queue: 'secenv', redis: r.url('worker'), redisCa: join(tmp, 'missing.crt') }), /redisCa: cannot read/);
    const client = new Redis({ lazyConnect: true });
    assert.throws(() => attach(worker, { queue: 'secenv', redis: client, redisCa: r.caFile }), /ioredis client/);
    client.disconnect();
    // a CA given as PEM text rather than a path
    handle = attach(worker, { queue: 'secenv', redis: r.url('worker'), redisCa: readFileSync(r.caFile, 'utf8') });
    await handle.ready;
    await handle.close();
  } finally {
    for (const k of ['SLUICE_REDIS_PASSWORD', 'SLUICE_REDIS_PASSWORD_FILE', 'SLUICE_REDIS_CA']) {
      if (k in saved) process.env[k] = saved[k]; else delete process.env[k];
    }
    await worker.close();
  }
});
