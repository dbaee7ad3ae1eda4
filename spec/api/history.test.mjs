// history.test.mjs — GET /admin/runtime-scaling/history on a real sluiced:
// samples every 10 s, ranges and their steps, gaps, change markers, desired
// concurrency given back by the audit log after a restart on the same
// database, and the validation of its query.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, putScaling, assertError, waitFor } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.cleanup(); });

const history = (query, token = srv.tokens.read) =>
  srv.request('GET', `/admin/runtime-scaling/history?${query}`, { token });

// The index of the last point that holds a sample of series name, or -1.
const lastSample = (h, name) => h.series[name].findLastIndex((v) => v !== null);

test('ranges_have_their_steps_and_every_series_one_point_per_step', async () => {
  const want = { '15m': [10, 90], '1h': [10, 360], '6h': [30, 720], '24h': [120, 720] };
  for (const [range, [step, points]] of Object.entries(want)) {
    const res = await history(`queue=alpha&range=${range}`);
    assert.equal(res.status, 200, res.text);
    const h = res.json;
    assert.equal(h.queue, 'alpha');
    assert.equal(h.range, range);
    assert.equal(h.step_s, step);
    for (const name of ['t', 'waiting', 'active', 'desired', 'running', 'workers', 'done_per_s', 'failed_per_s'])
      assert.equal(h.series[name].length, points, `${range} ${name}`);
    assert.equal(h.series.t[1] - h.series.t[0], step * 1000);
    assert.equal(Date.parse(h.from), h.series.t[0]);
    assert.equal(Date.parse(h.to), h.series.t.at(-1) + step * 1000);
    assert.ok(Array.isArray(h.markers));
  }
  const dflt = await history('queue=alpha');
  assert.equal(dflt.json.range, '1h');
  assert.ok(dflt.headers.etag, 'a body with its ETag');
});

test('samples_appear_every_10_s_with_gaps_where_nothing_was_known', async () => {
  const h = await waitFor(async () => {
    const j = (await history('queue=alpha&range=15m')).json;
    return lastSample(j, 'running') >= 0 ? j : null;
  }, 25000, 500);
  assert.ok(h, 'a sample within 25 s');
  const i = lastSample(h, 'running');
  assert.equal(h.series.desired[i], 4);
  assert.equal(h.series.running[i], 0);
  assert.equal(h.series.workers[i], 0);
  // No Redis in this suite: depth and rates are not known, so they are gaps.
  assert.equal(h.series.waiting[i], null);
  assert.equal(h.series.done_per_s[i], null);
  // Before the process started, only desired (from the audit log) is filled.
  assert.equal(h.series.running[0], null);
  assert.equal(h.series.desired[0], 4);
});

test('changes_are_markers_and_desired_follows_them', async () => {
  assert.equal((await putScaling(srv, 'beta', { desired_concurrency: 10, reason: 'more builds' })).status, 200);
  const h = (await history('queue=beta&range=15m')).json;
  const m = h.markers.at(-1);
  assert.equal(m.from, 4);
  assert.equal(m.to, 10);
  assert.equal(m.version, 1);
  assert.equal(m.actor, 'root-admin');
  assert.equal(m.reason, 'more builds');
  assert.equal(Date.parse(m.at), m.at_ms);
  assert.ok(m.at_ms >= Date.parse(h.from) && m.at_ms < Date.parse(h.to));
  // Steps before the change show 4; its own step shows its last sample
  // (taken before or after the change); the next sample shows 10.
  const k = h.series.t.findIndex((t) => t + 10000 > m.at_ms);
  if (k > 0) assert.equal(h.series.desired[k - 1], 4);
  const later = await waitFor(async () => {
    const j = (await history('queue=beta&range=15m')).json;
    const i = lastSample(j, 'running');      // indices move as the window slides: compare times
    return i >= 0 && j.series.t[i] > m.at_ms ? j.series.desired[i] : null;
  }, 25000, 500);
  assert.equal(later, 10);
  // Other queues do not see it.
  assert.deepEqual((await history('queue=alpha&range=15m')).json.markers, []);
});

test('after_a_restart_desired_and_markers_come_back_from_the_audit_log', async () => {
  assert.equal((await putScaling(srv, 'zero', { desired_concurrency: 5, reason: 'before restart' })).status, 200);
  await srv.stop();
  await srv.start();
  const h = (await history('queue=zero&range=1h')).json;
  assert.equal(h.markers.length, 1);
  assert.equal(h.markers[0].to, 5);
  assert.equal(h.markers[0].reason, 'before restart');
  const k = h.series.t.findIndex((t) => t + 10000 > h.markers[0].at_ms);
  assert.equal(h.series.desired[k], 5);
  assert.equal(h.series.desired[k - 1], 2);        // the policy default before the change
  // Nothing was sampled by this process before its start: running is a gap there.
  assert.equal(h.series.running[k - 1], null);
});

test('the_query_is_validated', async () => {
  const bad = await history('queue=alpha&range=2h');
  assertError(bad, 400, 'invalid_field');
  assert.equal(bad.json.error.details.field, 'range');
  const none = await history('range=1h');
  assertError(none, 400, 'invalid_field');
  assert.equal(none.json.error.details.field, 'queue');
  assertError(await history('queue=nope'), 404, 'unknown_queue');
  const extra = await history('queue=alpha&step=5');
  assertError(extra, 400, 'invalid_field');
  assert.equal(extra.json.error.details.field, 'step');
  assertError(await srv.request('GET', '/admin/runtime-scaling/history?queue=alpha'), 401, 'unauthenticated');
  assertError(await history('queue=alpha', srv.tokens.write), 403, 'forbidden');
});
