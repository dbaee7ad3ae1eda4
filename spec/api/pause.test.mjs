// pause.test.mjs — pause and resume of a queue (issue 18): real sluice-worker
// processes and a real producer on a real Redis. A paused queue's workers
// take no new job and finish the ones they run, whatever min says; they
// acknowledge the pause's version with "paused": true; a resume lets the
// waiting jobs flow again; a timed pause ends by itself; every step is
// audited as kind 'pause', and versions keep their order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startServer, putScaling, assertError, TEST_POLICY, BUILD } from './harness.mjs';
import { startRedis, startWorker, produce, reports, listen, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "held"   { min = 2, default = 2, max = 8 }
queue "idem"   { }
queue "timed"  { }
queue "order"  { }
queue "scopes" { }
queue "drain"  { min = 1, default = 1 }
queue "ctl"    { }
alert "idem_paused" {
  severity = "info", for_s = 0,
  queue = function(q) return q.queue == "idem" and q.paused end,
}
alert "concurrency_mismatch" {
  severity = "warning", for_s = 0,
  worker = function(w, q) return w.concurrency ~= q.desired end,
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

const pause = (queue, body, token = srv.tokens.admin) =>
  srv.request('POST', `/api/v1/scaling/${queue}/pause`, { token, json: body });
const resume = (queue, body, token = srv.tokens.admin) =>
  srv.request('POST', `/api/v1/scaling/${queue}/resume`, { token, json: body });
const target = async (queue) => (await srv.request('GET', `/api/v1/scaling/${queue}`, { token: srv.tokens.read })).json;
const snapshotQueue = async (queue) =>
  (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json.queues.find((q) => q.queue === queue);
const desired = async (queue) => JSON.parse(await redis.client().hget('sluice:desired', queue));
const pauseAudit = async (queue) =>
  (await srv.request('GET', `/api/v1/audit?kind=pause&queue=${queue}`, { token: srv.tokens.read })).json.items;

test('a_pause_lets_running_jobs_finish_takes_no_new_one_and_a_resume_drains_the_queue', async () => {
  const c = redis.client();
  const seen = await reports(redis);
  const ws = [1, 2].map((i) => startWorker(redis, 'held', ['--id', `held-${i}`, '--concurrency', '2']));
  const completed = () => Object.values(seen.latest).reduce((n, m) => n + (m.completed || 0), 0);
  try {
    assert.ok(await waitFor(() => Object.keys(seen.latest).length === 2, 5000), 'workers did not report');
    await produce(redis, 'held', 10, ['--sleep-ms', '1500']);
    // 2 workers × min 2: four jobs run, six wait.
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:held:active')) === 4, 5000), 'jobs did not start');
    const before = await target('held');
    const r = await pause('held', { reason: 'hold for the migration', wait_ms: 5000 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.paused, true);
    assert.equal(r.json.changed, true);
    assert.equal(r.json.version, before.version + 1, 'a pause is a new version');
    assert.equal(r.json.desired_concurrency, 2, 'desired is kept');
    assert.equal(r.json.paused_by, 'root-admin');
    assert.equal(r.json.paused_reason, 'hold for the migration');
    assert.equal(r.json.paused_until, null);
    assert.deepEqual(r.json.acks, { expected: 2, acknowledged: 2, complete: true });
    for (const id of ['held-1', 'held-2']) {
      const m = seen.latest[id];
      assert.equal(m.version, r.json.version);
      assert.equal(m.paused, true, `${id} did not ack paused`);
      assert.equal(m.concurrency, 2, 'a paused worker reports what it returns to');
    }
    // The four running jobs finish; none of the six waiting starts.
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:held:active')) === 0, 5000), 'running jobs did not finish');
    assert.equal(await c.llen('sluice:q:held:wait'), 6);
    assert.ok(await waitFor(() => completed() === 4, 3000), `completed ${completed()}, want 4`);
    await sleep(1000);                      // long enough for a job to be taken if any were
    assert.equal(await c.llen('sluice:q:held:wait'), 6, 'a paused worker took a job');
    assert.equal(await c.llen('sluice:q:held:active'), 0);

    const snap = await snapshotQueue('held');
    assert.equal(snap.paused, true);
    assert.equal(snap.paused_by, 'root-admin');
    assert.equal(snap.paused_reason, 'hold for the migration');
    assert.ok(snap.workers.every((w) => w.paused === true && w.state === 'ok'), JSON.stringify(snap.workers));
    assert.deepEqual(snap.alerts, [], 'no mismatch alert for a paused queue whose workers ack paused');
    const h = await desired('held');
    assert.equal(h.paused, true);
    assert.equal(h.version, r.json.version);

    const back = await resume('held', { reason: 'migration done', wait_ms: 5000 });
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.paused, false);
    assert.equal(back.json.paused_by, null);
    assert.equal(back.json.version, r.json.version + 1);
    assert.equal(back.json.desired_concurrency, 2);
    assert.deepEqual(back.json.acks, { expected: 2, acknowledged: 2, complete: true });
    assert.ok(['held-1', 'held-2'].every((id) => seen.latest[id].paused === false));
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:held:wait')) === 0, 5000), 'jobs did not flow again');
    assert.ok(await waitFor(() => completed() === 10, 8000), `completed ${completed()}, want 10`);

    const audit = await pauseAudit('held');
    assert.deepEqual(audit.map((e) => [e.kind, e.from, e.to, e.version, e.outcome, e.actor]), [
      ['pause', 1, 0, back.json.version, 'applied', 'root-admin'],
      ['pause', 0, 1, r.json.version, 'applied', 'root-admin'],
    ]);
    assert.equal(audit[1].reason, 'hold for the migration');
  } finally {
    await Promise.all(ws.map((w) => w.stop()));
  }
});

test('a_job_pushed_while_paused_waits_for_an_idle_worker_and_a_worker_started_meanwhile', async () => {
  const c = redis.client();
  const seen = await reports(redis);
  const w = startWorker(redis, 'drain', ['--id', 'drain-1']);
  let late;
  try {
    assert.ok(await waitFor(() => seen.latest['drain-1'], 5000));
    const r = await pause('drain', { reason: 'idle pause', wait_ms: 5000 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.acks.complete, true);
    await produce(redis, 'drain', 3, ['--sleep-ms', '10']);
    // A worker started during the pause takes nothing either.
    late = startWorker(redis, 'drain', ['--id', 'drain-2', '--concurrency', '4']);
    assert.ok(await waitFor(() => seen.latest['drain-2']?.paused === true, 5000), 'a late worker did not hold the pause');
    await sleep(1500);                      // a blocked BLMOVE returns within 1 s
    assert.equal(await c.llen('sluice:q:drain:wait'), 3, 'a job was taken while paused');
    assert.equal(seen.latest['drain-1'].completed, 0);
    assert.equal(seen.latest['drain-2'].completed, 0);
    assert.equal(seen.latest['drain-2'].version, r.json.version);
    assert.equal((await resume('drain', { reason: 'go', wait_ms: 5000 })).status, 200);
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:drain:wait')) === 0, 5000));
  } finally {
    await Promise.all([w.stop(), late?.stop()]);
  }
});

test('pausing_a_paused_queue_and_resuming_a_running_one_change_nothing', async () => {
  const running = await resume('idem', { reason: 'already running' });
  assert.equal(running.status, 200, running.text);
  assert.equal(running.json.changed, false);
  assert.equal(running.json.audit_id, null);
  const first = await pause('idem', { reason: 'first' });
  assert.equal(first.json.changed, true);
  const again = await pause('idem', { reason: 'second', duration_s: 60 });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.changed, false);
  assert.equal(again.json.version, first.json.version, 'no new version');
  assert.equal(again.json.paused_reason, 'first', 'the pause in force stays');
  assert.equal(again.json.paused_until, null);
  const audit = await pauseAudit('idem');
  assert.equal(audit.length, 1);
  // Alert rules see q.paused.
  const named = async () => (await snapshotQueue('idem')).alerts.map((a) => a.name);
  assert.ok(await waitFor(async () => (await named()).includes('idem_paused'), 4000), 'q.paused not seen by the rules');
  assert.equal((await resume('idem', { reason: 'done' })).json.changed, true);
  assert.equal((await pauseAudit('idem')).length, 2);
  assert.ok(await waitFor(async () => !(await named()).includes('idem_paused'), 4000), 'the alert did not resolve');
});

test('a_timed_pause_ends_by_itself_and_is_audited_as_expiry', async () => {
  const r = await pause('timed', { reason: 'one second', duration_s: 1 });
  assert.equal(r.status, 200, r.text);
  const until = Date.parse(r.json.paused_until);
  assert.ok(Math.abs(until - (Date.now() + 1000)) < 1500, r.json.paused_until);
  const ended = await waitFor(async () => {
    const t = await target('timed');
    return t.paused === false ? t : null;
  }, 5000);
  assert.ok(ended, 'the timed pause did not end');
  assert.equal(ended.version, r.json.version + 1);
  assert.ok(Date.now() >= until, 'ended early');
  const audit = await pauseAudit('timed');
  assert.equal(audit[0].source, 'expiry');
  assert.equal(audit[0].actor, 'sluice');
  assert.deepEqual([audit[0].from, audit[0].to, audit[0].version], [1, 0, ended.version]);
  assert.ok(await waitFor(async () => (await desired('timed')).version === ended.version, 3000));
  assert.equal((await desired('timed')).paused, false);
});

test('changes_while_paused_keep_the_pause_and_versions_reach_workers_in_order', async () => {
  const msgs = await listen(redis, 'sluice:scaling');
  const p = await pause('order', { reason: 'hold' });
  const put = await putScaling(srv, 'order', { desired_concurrency: 6, reason: 'more while paused' });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.paused, true, 'a change of the value keeps the pause');
  assert.equal(put.json.version, p.json.version + 1);
  const r = await resume('order', { reason: 'go' });
  assert.equal(r.json.desired_concurrency, 6, 'a resume returns to the desired value in force');
  assert.ok(await waitFor(() => msgs.filter((m) => m.queue === 'order').length === 3, 3000), JSON.stringify(msgs));
  assert.deepEqual(msgs.filter((m) => m.queue === 'order').map((m) => [m.version, m.concurrency, m.paused]), [
    [p.json.version, 4, true], [put.json.version, 6, true], [r.json.version, 6, false],
  ]);
  // The queue's own history tells the whole story, pauses included.
  const h = await srv.request('GET', '/api/v1/scaling/order/history', { token: srv.tokens.read });
  assert.deepEqual(h.json.items.map((e) => [e.kind, e.version, e.from, e.to]), [
    ['pause', r.json.version, 1, 0], ['scaling', put.json.version, 4, 6], ['pause', p.json.version, 0, 1],
  ]);
});

test('pause_and_resume_need_scaling_write_a_reason_and_a_known_queue', async () => {
  assertError(await pause('scopes', { reason: 'x' }, srv.tokens.read), 403, 'forbidden');
  assertError(await resume('scopes', { reason: 'x' }, srv.tokens.read), 403, 'forbidden');
  assertError(await srv.request('POST', '/api/v1/scaling/scopes/pause', { json: { reason: 'x' } }), 401, 'unauthenticated');
  assertError(await pause('scopes', {}), 400, 'invalid_field');
  assertError(await pause('scopes', { reason: 'x', duration_s: 0 }), 400, 'invalid_field');
  assertError(await pause('scopes', { reason: 'x', duration_s: 30 * 86400 + 1 }), 400, 'invalid_field');
  assertError(await pause('scopes', { reason: 'x', duration_s: '60' }), 400, 'invalid_field');
  assertError(await pause('scopes', { reason: 'x', confirm: true }), 400, 'invalid_field');
  assertError(await resume('scopes', { reason: 'x', duration_s: 5 }), 400, 'invalid_field');
  assertError(await pause('nosuch', { reason: 'x' }), 404, 'unknown_queue');
  assert.equal((await target('scopes')).paused, false, 'refusals changed nothing');
  const w = await pause('scopes', { reason: 'writer may' }, srv.tokens.write);
  assert.equal(w.status, 200, w.text);
  assert.equal(w.json.paused, true);

  // The writes flag: refused and audited as kind pause.
  const off = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: false, reason: 'freeze' } });
  assert.equal(off.status, 200, off.text);
  try {
    assertError(await resume('scopes', { reason: 'during freeze' }), 403, 'writes_disabled');
    const [e] = await pauseAudit('scopes');
    assert.deepEqual([e.outcome, e.error_code, e.from, e.to], ['rejected', 'writes_disabled', 1, 0]);
    assert.equal((await target('scopes')).paused, true);
  } finally {
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'thaw' } });
  }
  const filtered = await srv.request('GET', '/api/v1/audit?kind=pause', { token: srv.tokens.read });
  assert.equal(filtered.status, 200);
  assert.ok(filtered.json.items.length > 0 && filtered.json.items.every((e) => e.kind === 'pause'));
});

function ctl(args, token = srv.tokens.readwrite) {
  const env = { ...process.env, SLUICE_URL: `http://127.0.0.1:${srv.port}`, SLUICE_TOKEN: token };
  return new Promise((resolveP) => {
    execFile(join(BUILD, 'sluicectl'), args, { env, timeout: 60000 },
      (err, stdout, stderr) => resolveP({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('sluicectl_pauses_for_a_while_says_so_and_resumes', async () => {
  const p = await ctl(['pause', 'ctl', '--reason', 'deploy window', '--duration', '30m']);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /^ctl: paused until \S+Z \(version 1, desired 4\)$/m);
  const t = await target('ctl');
  assert.equal(t.paused, true);
  assert.ok(Math.abs(Date.parse(t.paused_until) - (Date.now() + 1800e3)) < 60e3, t.paused_until);
  const again = await ctl(['pause', 'ctl', '--reason', 'again', '--duration', '120']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already paused: nothing changed/);
  const get = await ctl(['get', 'ctl']);
  assert.match(get.stdout, /^ctl .* PAUSED: deploy window$/m);
  const [e] = (await srv.request('GET', '/api/v1/audit?kind=pause&queue=ctl', { token: srv.tokens.read })).json.items;
  assert.equal(e.source, 'cli');
  const r = await ctl(['resume', 'ctl', '--reason', 'window over']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ctl: running \(version 2, desired 4\)$/m);
  assert.equal((await target('ctl')).paused, false);
  // Usage errors and refusals exit as set's do.
  for (const args of [['pause', 'ctl'], ['resume'], ['resume', 'ctl', '--reason', 'x', '--duration', '5m'],
    ['pause', 'ctl', '--reason', 'x', '--duration', 'soon']]) {
    const u = await ctl(args);
    assert.equal(u.code, 1, `${args.join(' ')}: ${u.stdout}`);
    assert.match(u.stderr, /^sluicectl: /);
  }
  const denied = await ctl(['pause', 'ctl', '--reason', 'x'], srv.tokens.read);
  assert.equal(denied.code, 2, denied.stderr);
  assert.equal((await target('ctl')).paused, false);
});
