// propagation.test.mjs — changes reach real workers through a real Redis,
// and nothing is lost when Redis, the subscriber or sluiced go away.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, putScaling, TEST_POLICY } from './harness.mjs';
import { startRedis, startWorker, listen, reports, produce, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = TEST_POLICY + `
alert "concurrency_mismatch" {
  severity = "warning", for_s = 1,
  worker = function(w, q) return w.concurrency ~= q.desired end,
  message = function(w, q) return ("%s runs %d, desired %d"):format(w.id, w.concurrency, q.desired) end,
}
`;

let redis;
let srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

const desired = async (queue) => JSON.parse(await redis.client().hget('sluice:desired', queue));

test('the_desired_hash_holds_every_declared_queue_at_start', async () => {
  assert.ok(await waitFor(async () => (await redis.client().hlen('sluice:desired')) === 6, 3000));
  const zero = await desired('zero');
  assert.deepEqual({ ...zero, at: undefined }, { queue: 'zero', concurrency: 2, version: 0, paused: false, at: undefined });
});

test('several_workers_converge_and_wait_ms_reports_every_ack', async () => {
  const seen = await reports(redis);
  const ws = [1, 2, 3].map((i) => startWorker(redis, 'alpha', ['--id', `alpha-${i}`]));
  try {
    assert.ok(await waitFor(() => Object.keys(seen.latest).length === 3, 5000), 'workers did not report');
    const t0 = Date.now();
    const r = await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'converge', wait_ms: 5000 });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.acks, { expected: 3, acknowledged: 3, complete: true });
    assert.ok(Date.now() - t0 < 2000, 'acks took too long');
    for (const i of [1, 2, 3]) {
      const m = seen.latest[`alpha-${i}`];
      assert.equal(m.version, r.json.version);
      assert.equal(m.concurrency, 7);
    }
    const h = await desired('alpha');
    assert.equal(h.version, r.json.version);
    assert.equal(h.concurrency, 7);
  } finally {
    await Promise.all(ws.map((w) => w.stop()));
  }
});

test('wait_ms_ends_at_its_deadline_and_says_who_is_missing', async () => {
  const w = startWorker(redis, 'beta', ['--id', 'beta-capped', '--max', '2']);
  const stuck = await redis.client();
  try {
    assert.ok(await waitFor(async () => {
      const r = await putScaling(srv, 'beta', { desired_concurrency: 3, reason: 'probe', wait_ms: 0 });
      return r.json.acks && r.json.acks.expected === 1;
    }, 5000));
    // A fake worker that heartbeats but never applies anything.
    const beat = setInterval(() => stuck.publish('sluice:reports', JSON.stringify({
      event: 'heartbeat', worker: 'beta-stuck', queue: 'beta', concurrency: 1, version: 0, interval_ms: 200 })), 100);
    await sleep(300);
    const t0 = Date.now();
    const r = await putScaling(srv, 'beta', { desired_concurrency: 5, reason: 'partial', wait_ms: 700 });
    clearInterval(beat);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.acks, { expected: 2, acknowledged: 1, complete: false });
    assert.ok(Date.now() - t0 >= 650, 'answered before the deadline');
  } finally {
    await w.stop();
  }
});

test('a_held_wait_does_not_block_other_requests', async () => {
  const stuck = redis.client();
  const beat = setInterval(() => stuck.publish('sluice:reports', JSON.stringify({
    event: 'heartbeat', worker: 'zero-stuck', queue: 'zero', concurrency: 1, version: 0, interval_ms: 200 })), 100);
  try {
    await sleep(300);
    // more held requests than the server has HTTP threads (2)
    const held = [1, 2, 3].map((i) => srv.request('GET', '/api/v1/scaling/zero', { token: srv.tokens.read })
      .then(() => putScaling(srv, 'zero', { desired_concurrency: 3 + i, reason: `held ${i}`, wait_ms: 1500 })));
    await sleep(400);
    const t0 = Date.now();
    const quick = await srv.request('GET', '/api/v1/scaling', { token: srv.tokens.read });
    assert.equal(quick.status, 200);
    assert.ok(Date.now() - t0 < 500, `a read waited ${Date.now() - t0} ms behind held waits`);
    const done = await Promise.all(held);
    for (const r of done) assert.equal(r.json.acks.complete, false);
  } finally {
    clearInterval(beat);
  }
});

test('a_worker_started_after_the_change_converges_from_the_hash', async () => {
  const r = await putScaling(srv, 'guarded', { desired_concurrency: 6, reason: 'before the worker' });
  assert.equal(r.status, 200, r.text);
  const seen = await reports(redis);
  const w = startWorker(redis, 'guarded', ['--id', 'late-1', '--concurrency', '1']);
  try {
    assert.ok(await waitFor(() => seen.latest['late-1']?.version === r.json.version, 5000), 'late worker did not converge');
    assert.equal(seen.latest['late-1'].concurrency, 6);
  } finally { await w.stop(); }
});

test('a_lost_publish_is_made_good_by_the_worker_timer', async () => {
  const seen = await reports(redis);
  const w = startWorker(redis, 'guarded', ['--id', 'timer-1', '--poll-ms', '300']);
  try {
    assert.ok(await waitFor(() => seen.latest['timer-1'], 5000));
    const cur = await desired('guarded');
    // Write the hash but publish nothing: only the timer can notice.
    await redis.client().hset('sluice:desired', 'guarded',
      JSON.stringify({ queue: 'guarded', concurrency: 9, version: cur.version + 100, at: new Date().toISOString() }));
    assert.ok(await waitFor(() => seen.latest['timer-1']?.concurrency === 9, 2000), 'timer did not pick it up');
  } finally {
    await w.stop();
    // put the real state back from the database
    await putScaling(srv, 'guarded', { desired_concurrency: 7, reason: 'restore after the timer test' });
  }
});

test('a_killed_pubsub_connection_still_converges', async () => {
  const seen = await reports(redis);
  const w = startWorker(redis, 'alpha', ['--id', 'killed-1', '--poll-ms', '1000']);
  try {
    assert.ok(await waitFor(() => seen.latest['killed-1'], 5000));
    await redis.client().client('KILL', 'TYPE', 'pubsub');
    const r = await putScaling(srv, 'alpha', { desired_concurrency: 3, reason: 'after the kill' });
    assert.equal(r.status, 200, r.text);
    assert.ok(await waitFor(() => seen.latest['killed-1']?.version === r.json.version, 4000), 'did not converge');
  } finally { await w.stop(); }
});

test('changes_made_while_redis_is_down_arrive_in_order_when_it_returns', async () => {
  await redis.stop();
  const v = [];
  for (const n of [11, 12, 13]) {
    const r = await putScaling(srv, 'beta', { desired_concurrency: n, reason: `outage ${n}` });
    assert.equal(r.status, 200, r.text);
    v.push(r.json.version);
  }
  await sleep(1200);                       // let the relay back off a few times
  await redis.start();                     // empty: it lost everything
  const msgs = await listen(redis, 'sluice:scaling');
  assert.ok(await waitFor(() => msgs.filter((m) => m.queue === 'beta').length >= 3, 8000), 'not delivered');
  const beta = msgs.filter((m) => m.queue === 'beta');
  assert.deepEqual(beta.map((m) => m.version), v, 'out of order or duplicated');
  assert.deepEqual(beta.map((m) => m.concurrency), [11, 12, 13]);
  // the hash was repaired for every queue
  assert.ok(await waitFor(async () => (await redis.client().hlen('sluice:desired')) === 6, 3000));
  assert.equal((await desired('beta')).version, v[2]);
  const rows = srv.sql('SELECT COUNT(*) FROM scaling_outbox WHERE published_at IS NULL');
  assert.equal(rows, '0');
});

test('a_change_committed_before_a_sigkill_is_published_after_restart', async () => {
  await redis.stop();
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 5, reason: 'before the crash' });
  assert.equal(r.status, 200, r.text);
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv.proc = null;
  await redis.start();
  await srv.start();
  assert.ok(await waitFor(async () => (await desired('alpha'))?.version === r.json.version, 5000), 'not published after restart');
  assert.equal((await desired('alpha')).concurrency, 5);
});

test('a_worker_running_the_wrong_concurrency_fires_and_resolves_the_mismatch_alert', async () => {
  // Only the leader announces alerts. After the SIGKILL above, a PostgreSQL
  // server waits for the dead process's lease to run out (4 s) first.
  assert.ok(await waitFor(async () => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json?.leader, 10000),
    'never became the leader');
  const alerts = await listen(redis, 'sluice:alerts');
  const w = startWorker(redis, 'zero', ['--id', 'zero-capped', '--max', '3']);
  try {
    const r = await putScaling(srv, 'zero', { desired_concurrency: 5, reason: 'above the hard limit', wait_ms: 3000 });
    assert.equal(r.status, 200, r.text);
    const fired = await waitFor(() => alerts.find((a) => a.alert === 'concurrency_mismatch' && a.worker === 'zero-capped' && a.state === 'firing'), 5000);
    assert.ok(fired, 'mismatch did not fire');
    assert.equal(fired.queue, 'zero');
    assert.equal(fired.severity, 'warning');
    assert.match(fired.message, /zero-capped runs 3, desired 5/);
    const snap = (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
    const row = snap.queues.find((q) => q.queue === 'zero').workers.find((w) => w.id === 'zero-capped');
    assert.equal(row.state, 'mismatch');
    assert.match(row.error, /hard limit 3/);              // why it runs less is visible
    assert.ok(await waitFor(() => /"msg":"alert"/.test(srv.log), 1000));
    const back = await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'within the limit' });
    assert.equal(back.status, 200, back.text);
    assert.ok(await waitFor(() => alerts.find((a) => a.worker === 'zero-capped' && a.state === 'resolved'), 5000), 'did not resolve');
  } finally { await w.stop(); }
});

test('shrinking_while_jobs_run_loses_nothing', async () => {
  const seen = await reports(redis);
  const c = redis.client();
  await c.del('sluice:q:zero:wait', 'sluice:q:zero:active', 'sluice:q:zero:failed');
  // 200 jobs of 50 ms: over a second of work even at 8 at once, so the
  // shrink lands while jobs run.
  await produce(redis, 'zero', 200, ['--sleep-ms', '50', '--fail-ratio', '0.25']);
  const w = startWorker(redis, 'zero', ['--id', 'shrinker', '--concurrency', '1']);
  try {
    const up = await putScaling(srv, 'zero', { desired_concurrency: 8, reason: 'grow', wait_ms: 3000 });
    assert.equal(up.status, 200, up.text);
    assert.ok(await waitFor(() => (seen.latest.shrinker?.active ?? 0) >= 3, 3000),
      `pool did not grow: ${JSON.stringify(seen.latest.shrinker)} wait=${await c.llen('sluice:q:zero:wait')} ${JSON.stringify(up.json.acks)}\n${w.log}`);
    const down = await putScaling(srv, 'zero', { desired_concurrency: 2, reason: 'shrink while busy', wait_ms: 3000 });
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.acks.complete, true);
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:zero:wait')) === 0 && (await c.llen('sluice:q:zero:active')) === 0, 15000), 'queue did not drain');
    await sleep(400);                      // one more heartbeat with the final totals
    const last = seen.latest.shrinker;
    assert.ok(last.active <= 2);
    assert.equal(last.completed + last.failed, 200, `completed ${last.completed} + failed ${last.failed}`);
    assert.equal(last.failed, 50);
    assert.equal(await c.llen('sluice:q:zero:failed'), 50);
  } finally { await w.stop(); }
});

test('sigterm_drains_running_jobs_and_says_bye', async () => {
  const seen = await reports(redis);
  const c = redis.client();
  await c.del('sluice:q:budget:wait', 'sluice:q:budget:active');
  await produce(redis, 'budget', 6, ['--sleep-ms', '400']);
  const w = startWorker(redis, 'budget', ['--id', 'drainer', '--concurrency', '3']);
  assert.ok(await waitFor(() => (seen.latest.drainer?.active ?? 0) >= 2, 4000), 'jobs did not start');
  const { code } = await w.stop('SIGTERM');
  assert.equal(code, 0, w.log);
  assert.equal(await c.llen('sluice:q:budget:active'), 0, 'a running job was abandoned');
  assert.equal(seen.all.filter((m) => m.worker === 'drainer').at(-1).event, 'bye');
  const left = await c.llen('sluice:q:budget:wait');
  assert.equal(seen.all.filter((m) => m.worker === 'drainer').at(-1).completed + left, 6);
});

test('malformed_reports_are_counted_logged_and_change_nothing', async () => {
  const c = redis.client();
  const bad = ['not json', '[]', '{}', JSON.stringify({ event: 'ack' }),
    JSON.stringify({ event: 'ack', worker: 'x y', queue: 'alpha', concurrency: 1, version: 1 }),
    JSON.stringify({ event: 'ack', worker: 'w', queue: 'alpha', concurrency: -1, version: 1 }),
    JSON.stringify({ event: 'ack', worker: 'w', queue: 'alpha', concurrency: 'lots', version: 1 }),
    JSON.stringify({ event: 'ack', worker: 'w', queue: 'alpha', concurrency: 1, version: 1.5 }),
    JSON.stringify({ event: 'dance', worker: 'w', queue: 'alpha', concurrency: 1, version: 1 }),
    JSON.stringify({ event: 'ack', worker: 'w', queue: 'alpha', concurrency: 1, version: 1, pad: 'x'.repeat(5000) }),
    '{"event":"ack","event":"bye","worker":"w","queue":"alpha","concurrency":1,"version":1}'];
  for (const m of bad) await c.publish('sluice:reports', m);
  assert.ok(await waitFor(() => /malformed worker report refused/.test(srv.log), 2000), 'not logged');
  // nobody was added to the fleet by the garbage
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 6, reason: 'after garbage', wait_ms: 0 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.acks.expected, 0);
  // the log is rate limited: one line for the burst
  assert.ok((srv.log.match(/malformed worker report refused/g) || []).length <= 2);
});

test('a_temporary_override_reverts_by_itself_and_is_audited_as_expiry', async () => {
  const before = (await srv.request('GET', '/api/v1/scaling/guarded', { token: srv.tokens.read })).json;
  const r = await putScaling(srv, 'guarded', { desired_concurrency: before.desired_concurrency + 1, reason: 'short burst', duration_s: 1 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revert_to, before.desired_concurrency);
  assert.notEqual(r.json.expires_at, null);
  const back = await waitFor(async () => {
    const t = (await srv.request('GET', '/api/v1/scaling/guarded', { token: srv.tokens.read })).json;
    return t.desired_concurrency === before.desired_concurrency && t.expires_at === null ? t : null;
  }, 4000);
  assert.ok(back, 'override did not revert');
  assert.equal(back.version, r.json.version + 1);
  const h = await srv.request('GET', '/api/v1/scaling/guarded/history?limit=1', { token: srv.tokens.read });
  assert.equal(h.json.items[0].source, 'expiry');
  assert.equal(h.json.items[0].actor, 'sluice');
  assert.ok(await waitFor(async () => (await desired('guarded')).version === back.version, 3000), 'revert not published');
});

test('an_override_that_expired_while_sluiced_was_down_reverts_at_start', async () => {
  const before = (await srv.request('GET', '/api/v1/scaling/beta', { token: srv.tokens.read })).json;
  const r = await putScaling(srv, 'beta', { desired_concurrency: before.desired_concurrency - 1, reason: 'override', duration_s: 1 });
  assert.equal(r.status, 200, r.text);
  await srv.stop();
  await sleep(1300);
  await srv.start();
  const back = await waitFor(async () => {
    const t = (await srv.request('GET', '/api/v1/scaling/beta', { token: srv.tokens.read })).json;
    return t.desired_concurrency === before.desired_concurrency ? t : null;
  }, 3000);
  assert.ok(back, 'not reverted after the restart');
});
