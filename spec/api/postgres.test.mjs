// postgres.test.mjs — what only PostgreSQL offers: several replicas on one
// database with one leader, and riding out a database restart. Runs when
// the suite runs on PostgreSQL (tools/test.sh does both backends).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, putScaling, assertError, BACKEND, ROOT } from './harness.mjs';
import { startRedis, startWorker, listen, reports, waitFor, sleep } from './fleet_harness.mjs';
import { join } from 'node:path';

const skip = BACKEND !== 'postgres' && 'PostgreSQL only';
const snapshot = async (srv) => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;

async function twoReplicas() {
  const redis = await startRedis();
  const a = await startServer({ extraArgs: ['--redis', redis.url] });
  const b = await startServer({ shareWith: a, extraArgs: ['--redis', redis.url] });
  return { redis, a, b };
}

async function cleanupAll({ redis, a, b }) {
  try { await b?.cleanup().catch(() => {}); } finally {
    try { await a?.cleanup(); } finally { await redis.cleanup(); }
  }
}

test('writes_alternating_between_two_replicas_get_versions_1_to_N_in_order_each_published_once', { skip }, async () => {
  const r = await twoReplicas();
  try {
    assert.ok(await waitFor(async () => [await snapshot(r.a), await snapshot(r.b)].filter((s) => s.leader).length === 1, 5000),
      'not exactly one leader');
    const seen = await listen(r.redis, 'sluice:scaling');
    const versions = [];
    for (let i = 0; i < 10; i++) {
      const srv = i % 2 ? r.b : r.a;
      const res = await putScaling(srv, 'alpha', { desired_concurrency: 5 + (i % 2), reason: `replica write ${i}` });
      assert.equal(res.status, 200, res.text);
      versions.push(res.json.version);
    }
    assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(await waitFor(() => seen.filter((m) => m.queue === 'alpha').length >= 10, 5000), 'not all published');
    await sleep(500);
    const alpha = seen.filter((m) => m.queue === 'alpha').map((m) => m.version);
    assert.deepEqual(alpha, versions, 'out of order or published twice');
  } finally { await cleanupAll(r); }
});

test('sigkill_of_the_leader_hands_over_and_a_change_on_the_survivor_reaches_the_workers', { skip }, async () => {
  const r = await twoReplicas();
  const w = startWorker(r.redis, 'beta', ['--id', 'beta-failover']);
  try {
    let leaderSrv;
    assert.ok(await waitFor(async () => {
      if ((await snapshot(r.a)).leader) leaderSrv = r.a;
      else if ((await snapshot(r.b)).leader) leaderSrv = r.b;
      return leaderSrv;
    }, 5000));
    const survivor = leaderSrv === r.a ? r.b : r.a;
    leaderSrv.proc.kill('SIGKILL');
    await leaderSrv.exited;
    leaderSrv.proc = null;
    assert.ok(await waitFor(async () => (await snapshot(survivor)).leader, 8000), 'no take-over');
    const res = await putScaling(survivor, 'beta', { desired_concurrency: 9, reason: 'after the fail-over', wait_ms: 5000 });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.acks, { expected: 1, acknowledged: 1, complete: true });
    const h = JSON.parse(await r.redis.client().hget('sluice:desired', 'beta'));
    assert.equal(h.version, res.json.version);
    // the dead replica restarts as a follower and serves the same data
    await leaderSrv.start();
    assert.equal((await leaderSrv.request('GET', '/api/v1/scaling/beta', { token: leaderSrv.tokens.read })).json.desired_concurrency, 9);
    assert.equal((await snapshot(leaderSrv)).leader, false);
  } finally {
    await w.stop();
    await cleanupAll(r);
  }
});

test('a_postgres_restart_answers_503_meanwhile_and_nothing_is_half_written', { skip }, async () => {
  const dir = process.env.SLUICE_TEST_PG_DIR;
  const port = new URL(process.env.SLUICE_TEST_PG).port;
  const srv = await startServer();
  try {
    assert.equal((await putScaling(srv, 'alpha', { desired_concurrency: 6, reason: 'before' })).status, 200);
    const auditBefore = srv.sql('SELECT COUNT(*) FROM scaling_audit');
    execFileSync(join(ROOT, 'tools', 'pg.sh'), ['halt', dir]);
    try {
      const r = await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'during the outage' });
      assert.ok([401, 503].includes(r.status), r.text);   // the token check itself needs the store
      assertError(r, 503, 'store_unavailable');
      const ready = await srv.request('GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.equal(ready.json.error.details.store, 'down');
    } finally {
      execFileSync(join(ROOT, 'tools', 'pg.sh'), ['resume', dir, port]);
    }
    assert.equal(srv.sql('SELECT COUNT(*) FROM scaling_audit'), auditBefore, 'something was written');
    const after = await waitFor(async () => {
      const x = await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'after the restart' });
      return x.status === 200 ? x : null;
    }, 10000);
    assert.ok(after, 'did not recover');
    assert.equal(after.json.version, 2);
  } finally { await srv.cleanup(); }
});
