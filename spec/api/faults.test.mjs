// faults.test.mjs — the short versions of `make chaos`: Redis restarted
// empty while nothing changes, a fence set by a newer leader, and (on
// PostgreSQL) a leader frozen with SIGSTOP or its session terminated during
// a stream of changes. Invariants: the desired hash never goes backwards,
// publications stay in version order, every change ends up in Redis, and a
// frozen leader is replaced within its lease.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, putScaling, BACKEND, PG } from './harness.mjs';
import { startRedis, listen, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 64 }
queue "alpha" { }
queue "beta"  { }
`;
const snapshot = async (srv) => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
const hashVersion = async (redis, queue) => {
  const v = await redis.client().hget('sluice:desired', queue);
  return v ? JSON.parse(v).version : null;
};

test('redis_restarted_empty_while_idle_is_refilled_and_readyz_tells_the_truth', async () => {
  const redis = await startRedis();
  const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
  try {
    const put = await putScaling(srv, 'alpha', { desired_concurrency: 9, reason: 'before the restart' });
    assert.equal(put.status, 200, put.text);
    assert.ok(await waitFor(async () => (await hashVersion(redis, 'alpha')) === put.json.version, 3000));
    await sleep(1500);                     // idle: nothing queued, nothing to publish
    await redis.stop();                    // SIGKILL: the data is gone with it
    assert.ok(await waitFor(async () => (await srv.request('GET', '/readyz')).status === 503, 2500),
      'readyz still says ready with Redis down');
    await redis.start();                   // empty
    const back = Date.now();
    assert.ok(await waitFor(async () => (await hashVersion(redis, 'alpha')) === put.json.version, 4000, 100),
      `the desired hash was not refilled:\n${srv.log.slice(-2000)}`);
    const took = Date.now() - back;
    assert.ok(await waitFor(async () => (await srv.request('GET', '/readyz')).status === 200, 3000));
    assert.equal(JSON.parse(await redis.client().hget('sluice:desired', 'beta')).concurrency, 4, 'a never-changed queue');
    assert.ok(took < 4000, `refilled after ${took} ms`);
  } finally {
    await srv.cleanup();
    await redis.cleanup();
  }
});

test('a_newer_leaders_fence_stops_this_relay_and_the_hash_never_goes_back', async () => {
  const redis = await startRedis();
  const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
  try {
    const first = await putScaling(srv, 'alpha', { desired_concurrency: 5, reason: 'fenced test 1' });
    assert.ok(await waitFor(async () => (await hashVersion(redis, 'alpha')) === first.json.version, 3000));
    // A newer version already in Redis (as a later leader would leave it):
    // an older one is never written over it.
    const c = redis.client();
    await c.hset('sluice:desired', 'beta', JSON.stringify({ queue: 'beta', concurrency: 30, version: 50 }));
    const older = await putScaling(srv, 'beta', { desired_concurrency: 6, reason: 'older than redis' });
    assert.equal(older.status, 200, older.text);
    await sleep(600);
    assert.equal(await hashVersion(redis, 'beta'), 50, 'the hash went backwards');
    // A fence above this process's epoch: a newer leader exists, so this
    // one writes nothing more.
    await c.set('sluice:fence', '1000000000');
    const fenced = await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'fenced off' });
    assert.equal(fenced.status, 200, fenced.text);
    await sleep(800);
    assert.equal(await hashVersion(redis, 'alpha'), first.json.version, 'a fenced-off relay wrote');
    assert.ok(await waitFor(() => /a newer leader fenced this one off/.test(srv.log), 3000), srv.log.slice(-1500));
    await c.del('sluice:fence');           // that leader is gone for good
    assert.ok(await waitFor(async () => (await hashVersion(redis, 'alpha')) === fenced.json.version, 8000),
      'not written once the fence was lifted');
  } finally {
    await srv.cleanup();
    await redis.cleanup();
  }
});

// ---- PostgreSQL: two replicas -------------------------------------------------

const pgSkip = BACKEND !== 'postgres' && 'PostgreSQL only';

async function twoReplicas(lease = 2000) {
  const redis = await startRedis();
  const args = ['--redis', redis.url, '--leader-lease-ms', String(lease)];
  const a = await startServer({ policies: POLICY, extraArgs: args });
  const b = await startServer({ shareWith: a, policies: POLICY, extraArgs: args });
  let leader;
  assert.ok(await waitFor(async () => {
    const [sa, sb] = [await snapshot(a), await snapshot(b)];
    leader = sa.leader ? a : sb.leader ? b : null;
    return leader && sa.leader !== sb.leader;
  }, lease * 3), 'not exactly one leader');
  return { redis, a, b, leader, follower: leader === a ? b : a };
}

// Every publication per queue in strictly increasing version order.
function assertInOrder(seen) {
  const last = {};
  for (const m of seen) {
    assert.ok(!(m.queue in last) || m.version > last[m.queue],
      `${m.queue}: version ${m.version} published after ${last[m.queue]}`);
    last[m.queue] = m.version;
  }
}

test('a_frozen_leader_is_replaced_within_its_lease_and_writes_nothing_when_it_wakes', { skip: pgSkip }, async () => {
  const r = await twoReplicas(2000);
  const seen = await listen(r.redis, 'sluice:scaling');
  try {
    r.leader.proc.kill('SIGSTOP');
    const frozenAt = Date.now();
    assert.ok(await waitFor(async () => (await snapshot(r.follower)).leader, 6000), 'no take-over');
    const tookOver = Date.now() - frozenAt;
    const put = await putScaling(r.follower, 'alpha', { desired_concurrency: 11, reason: 'leader frozen' });
    assert.equal(put.status, 200, put.text);
    assert.ok(await waitFor(async () => (await hashVersion(r.redis, 'alpha')) === put.json.version, 3000),
      'a change on the new leader did not reach Redis');
    r.leader.proc.kill('SIGCONT');
    await sleep(1500);
    assert.equal((await snapshot(r.leader)).leader, false, 'two leaders after the wake-up');
    assert.equal(await hashVersion(r.redis, 'alpha'), put.json.version);
    assertInOrder(seen);
    assert.ok(tookOver < 6000, `take-over after ${tookOver} ms`);
  } finally {
    r.leader.proc?.kill('SIGCONT');
    await r.b.cleanup().catch(() => {});
    await r.a.cleanup();
    await r.redis.cleanup();
  }
});

test('terminating_the_leaders_session_ten_times_never_reorders_or_moves_the_hash_back', { skip: pgSkip }, async () => {
  const r = await twoReplicas(2000);
  const seen = await listen(r.redis, 'sluice:scaling');
  let stop = false;
  const hashSeen = [];
  const watcher = (async () => {
    while (!stop) { hashSeen.push(await hashVersion(r.redis, 'alpha')); await sleep(20); }
  })();
  try {
    let last;
    for (let i = 0; i < 10; i++) {
      for (let k = 0; k < 5; k++) {
        const srv = (i + k) % 2 ? r.a : r.b;
        const res = await putScaling(srv, 'alpha', { desired_concurrency: 2 + ((i * 5 + k) % 40), reason: `stream ${i}.${k}` });
        if (res.status === 200) last = res.json.version;
      }
      execFileSync('psql', [PG.replace(/\/[^/]*$/, `/${new URL(r.a.dbUrl).pathname.slice(1)}`), '-At', '-c',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluiced-leader' AND datname = current_database() AND pid <> pg_backend_pid()"],
      { encoding: 'utf8' });
      await sleep(100);
    }
    assert.ok(await waitFor(async () => (await hashVersion(r.redis, 'alpha')) === last, 10000),
      `the hash never reached version ${last}`);
    stop = true;
    await watcher;
    const versions = hashSeen.filter((v) => v !== null);
    for (let i = 1; i < versions.length; i++) assert.ok(versions[i] >= versions[i - 1], `hash went from ${versions[i - 1]} to ${versions[i]}`);
    assertInOrder(seen);
    assert.equal(r.a.sql("SELECT version FROM runtime_scaling_policies WHERE queue = 'alpha'"), String(last));
  } finally {
    stop = true;
    await watcher;
    await r.b.cleanup().catch(() => {});
    await r.a.cleanup();
    await r.redis.cleanup();
  }
});
