// operator_context.test.mjs — what issue 17 added for the operator's UI,
// on a real sluiced: change_window (reachable range, cooldown, budget) on
// the snapshot and the Target, out_of_bounds after a policy reload lowers
// max, the writes flag's who and why, policy reloads audited (applied and
// rejected), and the audit log's filters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, assertError, waitFor, TEST_POLICY } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.cleanup(); });

const snapshot = async () => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
const queueOf = (snap, q) => snap.queues.find((x) => x.queue === q);
const target = async (q) => (await srv.request('GET', `/api/v1/scaling/${q}`, { token: srv.tokens.read })).json;
const audit = async (query) => {
  const res = await srv.request('GET', `/api/v1/audit?${query}`, { token: srv.tokens.admin });
  assert.equal(res.status, 200, res.text);
  return res.json;
};

test('change_window_shows_the_reachable_range_and_the_cooldown_after_a_change', async () => {
  const before = queueOf(await snapshot(), 'cool').change_window;
  assert.deepEqual(before, { reachable_min: 1, reachable_max: 12, confirm_above: 24, cooldown_remaining_s: 0,
    next_change_at: null, budget_left: null, changes_per_hour: null });
  assert.equal((await putScaling(srv, 'cool', { desired_concurrency: 6, reason: 'warm up' })).status, 200);
  const w = (await target('cool')).change_window;
  assert.ok(w.cooldown_remaining_s > 25 && w.cooldown_remaining_s <= 30, JSON.stringify(w));
  assert.ok(Date.parse(w.next_change_at) > Date.now() + 20000);
  assert.equal(w.reachable_min, 1);
  assert.equal(w.reachable_max, 14);
  assert.deepEqual(queueOf(await snapshot(), 'cool').change_window.reachable_max, 14);
  // The refusal agrees with the window.
  const refused = await putScaling(srv, 'cool', { desired_concurrency: 7, reason: 'too soon' });
  assertError(refused, 429, 'rate_limited');
  assert.ok(Math.abs(refused.json.error.details.retry_after_s - w.cooldown_remaining_s) <= 1);
});

test('budget_left_counts_down_the_hourly_budget', async () => {
  assert.equal((await target('budget')).change_window.budget_left, 2);
  assert.equal((await target('budget')).change_window.changes_per_hour, 2);
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 5, reason: 'one' })).status, 200);
  assert.equal(queueOf(await snapshot(), 'budget').change_window.budget_left, 1);
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 6, reason: 'two' })).status, 200);
  const w = (await target('budget')).change_window;
  assert.equal(w.budget_left, 0);
  assert.ok(Date.parse(w.next_change_at) > Date.now() + 3500 * 1000);
  assertError(await putScaling(srv, 'budget', { desired_concurrency: 7, reason: 'three' }), 429, 'rate_limited');
});

test('a_temporary_override_shows_its_end_and_what_follows', async () => {
  const res = await putScaling(srv, 'alpha', { desired_concurrency: 9, reason: 'burst', duration_s: 600 });
  assert.equal(res.status, 200);
  const q = queueOf(await snapshot(), 'alpha');
  assert.equal(q.revert_to, 4);
  assert.ok(Date.parse(q.expires_at) > Date.now() + 590 * 1000);
  assert.equal(q.out_of_bounds, false);
  const none = queueOf(await snapshot(), 'zero');
  assert.equal(none.expires_at, null);
  assert.equal(none.revert_to, null);
});

test('writes_flag_says_who_set_it_and_why', async () => {
  assert.deepEqual((await snapshot()).writes, { enabled: true, updated_by: null, updated_at: null, reason: null });
  const put = (enabled, reason) => srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled, reason } });
  assert.equal((await put(false, 'release freeze')).status, 200);
  const w = (await snapshot()).writes;
  assert.equal(w.enabled, false);
  assert.equal(w.updated_by, 'root-admin');
  assert.equal(w.reason, 'release freeze');
  assert.ok(Date.parse(w.updated_at) <= Date.now());
  assert.equal((await put(true, 'freeze over')).status, 200);
  assert.equal((await snapshot()).writes.enabled, true);
});

test('policy_reloads_are_audited_and_out_of_bounds_flags_a_stored_value_above_the_new_max', async () => {
  assert.equal((await putScaling(srv, 'beta', { desired_concurrency: 20, reason: 'big' })).status, 200);
  const snap = await snapshot();
  assert.match(snap.policy.sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(snap.policy.files, ['test.lua']);
  assert.deepEqual(snap.policy.failing_rules, []);
  assert.equal(snap.policy.last_error, null);
  // Lower beta's max under its stored 20.
  writeFileSync(join(srv.policyDir, 'test.lua'), TEST_POLICY.replace('queue "beta"    { max = 64,', 'queue "beta"    { max = 16,'));
  const q = await waitFor(async () => {
    const b = queueOf(await snapshot(), 'beta');
    return b.bounds.max === 16 ? b : null;
  }, 5000);
  assert.ok(q, 'the reload shows');
  assert.equal(q.out_of_bounds, true);
  assert.equal((await target('beta')).out_of_bounds, true);
  assert.equal(q.change_window.reachable_max, 16);
  const applied = await waitFor(async () => (await audit('kind=policy')).items[0], 3000);
  assert.equal(applied.kind, 'policy');
  assert.equal(applied.action, 'reload');
  assert.equal(applied.queue, null);
  assert.equal(applied.outcome, 'applied');
  assert.equal(applied.actor, 'sluiced');
  assert.equal(applied.source, 'sluiced');
  assert.match(applied.reason, new RegExp(`sha256 ${(await snapshot()).policy.sha256}; files test.lua`));
  // A policy that does not load: audited as rejected with the error.
  writeFileSync(join(srv.policyDir, 'test.lua'), 'queue "x" {');
  const rejected = await waitFor(async () => (await audit('kind=policy&outcome=rejected')).items[0], 5000);
  assert.ok(rejected, 'the failed load is audited');
  assert.equal(rejected.action, 'reload');
  assert.match(rejected.reason, /test\.lua/);
  // The snapshot is cached bytes, rebuilt on the next tick: it says so within one.
  assert.ok(await waitFor(async () => (await snapshot()).policy.last_error, 3000), 'the snapshot shows the error');
  // The same broken content again is not audited twice.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await audit('kind=policy&outcome=rejected')).items.length, 1);
  writeFileSync(join(srv.policyDir, 'test.lua'), TEST_POLICY);
  assert.ok(await waitFor(async () => (await audit('kind=policy&outcome=applied')).items.length === 2, 5000));
});

test('the_audit_log_filters_by_queue_actor_outcome_source_kind_and_time', async () => {
  const start = new Date(Date.now() - 1000).toISOString();
  assert.equal((await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'filter me' }, srv.tokens.readwrite)).status, 200);
  assertError(await putScaling(srv, 'zero', { desired_concurrency: 300, reason: 'too big' }, srv.tokens.readwrite), 422, 'out_of_bounds');
  const byQueue = await audit('queue=zero');
  assert.equal(byQueue.items.length, 2);
  assert.ok(byQueue.items.every((e) => e.queue === 'zero' && e.kind === 'scaling'));
  assert.deepEqual((await audit('queue=zero&outcome=rejected')).items.map((e) => e.to), [300]);
  assert.equal((await audit('actor=ci-job')).items.length, 2);
  assert.equal((await audit('actor=ci-job&source=ui')).items.length, 0);
  assert.ok((await audit('kind=flag')).items.every((e) => e.kind === 'flag' && e.flag === 'writes'));
  assert.equal((await audit(`queue=zero&since=${start}`)).items.length, 2);
  assert.equal((await audit(`queue=zero&until=${start}`)).items.length, 0);
  const page = await audit('queue=zero&limit=1');
  assert.equal(page.items.length, 1);
  const next = await audit(`queue=zero&limit=1&before=${page.next_before}`);
  assert.equal(next.items[0].outcome, 'applied');
  assert.equal(next.next_before, null);
  // The queue's own history takes the same filters.
  const hist = await srv.request('GET', '/api/v1/scaling/zero/history?outcome=applied&actor=ci-job', { token: srv.tokens.read });
  assert.equal(hist.status, 200);
  assert.equal(hist.json.items.length, 1);
  for (const [arg, field] of [['outcome=maybe', 'outcome'], ['source=phone', 'source'], ['kind=x', 'kind'],
    ['since=yesterday', 'since'], ['until=2026-13-01T00:00:00Z', 'until'], ['actor=', 'actor'], ['limit=0', 'limit']]) {
    const bad = await srv.request('GET', `/api/v1/audit?${arg}`, { token: srv.tokens.admin });
    assertError(bad, 400, 'invalid_field');
    assert.equal(bad.json.error.details.field, field, arg);
  }
});

test('workers_rows_carry_host_pid_age_rates_and_last_error_fields', async () => {
  // No Redis in this suite: no worker rows; the shape is pinned by
  // telemetry.test.mjs and the unit test of the renderers.
  const q = queueOf(await snapshot(), 'alpha');
  assert.deepEqual(q.workers, []);
});
