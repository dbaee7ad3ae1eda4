// scaling.test.mjs — the scaling routes and every check of lua.md, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, putScaling, assertError } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.cleanup(); });

test('lists_every_declared_queue_with_defaults_at_version_0', async () => {
  const r = await srv.request('GET', '/api/v1/scaling', { token: srv.tokens.read });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.items.map((t) => t.queue), ['alpha', 'beta', 'cool', 'budget', 'zero', 'guarded']);
  const zero = r.json.items.find((t) => t.queue === 'zero');
  assert.equal(zero.desired_concurrency, 2);
  assert.equal(zero.version, 0);
  assert.equal(zero.updated_by, null);
  assert.deepEqual(zero.bounds, { default: 2, min: 0, max: 32, max_step: 8, cooldown_s: 0,
    changes_per_hour: null, confirm_above: 24, layout: 'sluice', approve_above: null,
    approval_ttl_s: 3600 });
});

test('get_unknown_queue_is_404_unknown_queue', async () => {
  assertError(await srv.request('GET', '/api/v1/scaling/nope', { token: srv.tokens.read }), 404, 'unknown_queue');
});

test('applies_a_change_with_who_when_why_and_bumps_version', async () => {
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 10, reason: 'nightly backfill' }, srv.tokens.readwrite);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.desired_concurrency, 10);
  assert.equal(r.json.previous, 4);
  assert.equal(r.json.version, 1);
  assert.equal(r.json.changed, true);
  assert.equal(typeof r.json.audit_id, 'number');
  assert.equal(r.json.updated_by, 'ci-job');
  assert.equal(r.json.reason, 'nightly backfill');
  assert.match(r.json.updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const g = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
  assert.equal(g.json.desired_concurrency, 10);
  assert.equal(g.json.version, 1);
  const h = await srv.request('GET', '/api/v1/scaling/alpha/history', { token: srv.tokens.read });
  assert.equal(h.json.items[0].from, 4);
  assert.equal(h.json.items[0].to, 10);
  assert.equal(h.json.items[0].actor, 'ci-job');
  assert.equal(h.json.items[0].source, 'api');
  assert.equal(h.json.items[0].outcome, 'applied');
  assert.equal(h.json.items[0].error_code, null);
  assert.equal(h.json.items[0].request_id, r.headers['x-request-id']);
});

test('a_change_to_the_current_value_answers_changed_false_without_an_audit_entry', async () => {
  const cur = (await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read })).json;
  const before = (await srv.request('GET', '/api/v1/scaling/alpha/history?limit=1', { token: srv.tokens.read })).json;
  const r = await putScaling(srv, 'alpha', { desired_concurrency: cur.desired_concurrency, reason: 'same again' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.version, cur.version);
  assert.equal(r.json.changed, false);
  assert.equal(r.json.audit_id, null);
  assert.equal(r.json.previous, cur.desired_concurrency);
  assert.equal(r.json.reason, cur.reason);               // the stored change, not this request's
  const h = await srv.request('GET', '/api/v1/scaling/alpha/history?limit=1', { token: srv.tokens.read });
  assert.deepEqual(h.json.items[0], before.items[0]);
});

test('refuses_above_max_with_out_of_bounds_and_details', async () => {
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 200, reason: 'too big' });
  assertError(r, 422, 'out_of_bounds');
  assert.deepEqual(r.json.error.details, { min: 1, max: 32 });
  assert.match(r.json.error.message, /200 is above max 32/);
});

test('refuses_below_min_with_out_of_bounds', async () => {
  assertError(await putScaling(srv, 'alpha', { desired_concurrency: 0, reason: 'stop' }), 422, 'out_of_bounds');
});

test('refuses_a_step_larger_than_max_step', async () => {
  const r = await putScaling(srv, 'beta', { desired_concurrency: 40, reason: 'jump', confirm: true });
  assertError(r, 422, 'step_too_large');
  assert.equal(r.json.error.details.max_step, 16);
});

test('asks_confirmation_above_confirm_above_and_applies_with_it', async () => {
  await putScaling(srv, 'beta', { desired_concurrency: 20, reason: 'step 1' });
  await putScaling(srv, 'beta', { desired_concurrency: 36, reason: 'step 2' });
  const r = await putScaling(srv, 'beta', { desired_concurrency: 50, reason: 'big batch' });
  assertError(r, 428, 'confirmation_required');
  assert.equal(r.json.error.details.confirm_above, 48);
  const ok = await putScaling(srv, 'beta', { desired_concurrency: 50, reason: 'big batch', confirm: true });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.desired_concurrency, 50);
});

test('cooldown_answers_429_with_retry_after', async () => {
  const first = await putScaling(srv, 'cool', { desired_concurrency: 5, reason: 'one' });
  assert.equal(first.status, 200, first.text);
  const r = await putScaling(srv, 'cool', { desired_concurrency: 6, reason: 'two' });
  assertError(r, 429, 'rate_limited');
  const retry = Number(r.headers['retry-after']);
  assert.ok(retry >= 29 && retry <= 30, `Retry-After ${r.headers['retry-after']}`);
  assert.equal(r.json.error.details.limit, 'cooldown');
});

test('hourly_budget_answers_429_after_the_budget_is_spent', async () => {
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 5, reason: '1' })).status, 200);
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 6, reason: '2' })).status, 200);
  const r = await putScaling(srv, 'budget', { desired_concurrency: 7, reason: '3' });
  assertError(r, 429, 'rate_limited');
  assert.equal(r.json.error.details.limit, 'changes_per_hour');
  const retry = Number(r.headers['retry-after']);
  assert.ok(retry > 3500 && retry <= 3600, `Retry-After ${r.headers['retry-after']}`);
});

test('expected_version_mismatch_is_409_with_current_version', async () => {
  const cur = (await srv.request('GET', '/api/v1/scaling/zero', { token: srv.tokens.read })).json;
  const r = await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'x', expected_version: cur.version + 5 });
  assertError(r, 409, 'version_conflict');
  assert.equal(r.json.error.details.current_version, cur.version);
  const ok = await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'x', expected_version: cur.version });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.version, cur.version + 1);
});

test('validate_hook_refuses_with_its_message', async () => {
  const r = await putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'this is forbidden' });
  assertError(r, 422, 'policy_rejected');
  assert.match(r.json.error.message, /reasons may not say forbidden/);
});

test('runaway_validate_is_cut_off_and_the_server_keeps_serving', async () => {
  const t0 = Date.now();
  const r = await putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'spin' });
  assertError(r, 422, 'policy_rejected');
  assert.equal(r.json.error.details.check, 'validate_error');
  assert.match(r.json.error.message, /instruction budget/);
  assert.ok(Date.now() - t0 < 10000);
  const ok = await putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'fine' });
  assert.equal(ok.status, 200, ok.text);
});

test('checks_run_in_the_documented_order', async () => {
  // version beats bounds
  let r = await putScaling(srv, 'alpha', { desired_concurrency: 999, reason: 'x', expected_version: 999 });
  assertError(r, 409, 'version_conflict');
  // bounds beat step
  r = await putScaling(srv, 'alpha', { desired_concurrency: 999, reason: 'x' });
  assertError(r, 422, 'out_of_bounds');
  // step beats confirmation
  r = await putScaling(srv, 'alpha', { desired_concurrency: 30, reason: 'x' });
  const cur = (await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read })).json.desired_concurrency;
  if (30 - cur > 8) assertError(r, 422, 'step_too_large');
  // confirmation beats cooldown
  const c = (await srv.request('GET', '/api/v1/scaling/cool', { token: srv.tokens.read })).json;
  assert.equal(c.desired_concurrency, 5);
  r = await putScaling(srv, 'cool', { desired_concurrency: 12, reason: 'x' });
  assertError(r, 429, 'rate_limited');   // 12 is not above 24: the cooldown decides
  // cooldown beats validate: guarded has no cooldown, so use validate alone
  r = await putScaling(srv, 'guarded', { desired_concurrency: 6, reason: 'forbidden again' });
  assertError(r, 422, 'policy_rejected');
});

test('refused_attempts_are_audited_with_their_error_code', async () => {
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 500, reason: 'audit me' });
  assertError(r, 422, 'out_of_bounds');
  const h = await srv.request('GET', '/api/v1/scaling/alpha/history?limit=1', { token: srv.tokens.read });
  const e = h.json.items[0];
  assert.equal(e.outcome, 'rejected');
  assert.equal(e.error_code, 'out_of_bounds');
  assert.equal(e.to, 500);
  assert.equal(e.reason, 'audit me');
  assert.equal(e.request_id, r.headers['x-request-id']);
});

test('history_pages_with_limit_and_before', async () => {
  const all = await srv.request('GET', '/api/v1/audit?limit=500', { token: srv.tokens.read });
  assert.ok(all.json.items.length >= 6);
  const ids = all.json.items.map((e) => e.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
  const p1 = await srv.request('GET', '/api/v1/audit?limit=2', { token: srv.tokens.read });
  assert.equal(p1.json.items.length, 2);
  assert.equal(p1.json.next_before, p1.json.items[1].id);
  const p2 = await srv.request('GET', `/api/v1/audit?limit=2&before=${p1.json.next_before}`, { token: srv.tokens.read });
  assert.deepEqual(p2.json.items.map((e) => e.id), ids.slice(2, 4));
  const last = await srv.request('GET', `/api/v1/audit?limit=500&before=${ids[ids.length - 1]}`, { token: srv.tokens.read });
  assert.deepEqual(last.json.items, []);
  assert.equal(last.json.next_before, null);
});

test('a_no_op_with_a_duration_starts_no_override_and_keeps_the_version', async () => {
  const before = (await srv.request('GET', '/api/v1/scaling/budget', { token: srv.tokens.read })).json;
  const r = await putScaling(srv, 'budget', { desired_concurrency: before.desired_concurrency, reason: 'same value', duration_s: 60 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.changed, false);
  const g = (await srv.request('GET', '/api/v1/scaling/budget', { token: srv.tokens.read })).json;
  assert.equal(g.version, before.version);
  assert.equal(g.expires_at, null);
});

test('sql_looking_strings_are_stored_verbatim', async () => {
  const reason = "'); DROP TABLE scaling_audit; -- \" OR 1=1 /* é ✓";
  const r = await putScaling(srv, 'zero', { desired_concurrency: 4, reason });
  assert.equal(r.status, 200, r.text);
  const h = await srv.request('GET', '/api/v1/scaling/zero/history?limit=1', { token: srv.tokens.read });
  assert.equal(h.json.items[0].reason, reason);
  assert.equal((await srv.request('GET', '/api/v1/audit', { token: srv.tokens.read })).status, 200);
});

test('a_500_character_reason_of_multibyte_characters_is_accepted', async () => {
  const reason = 'é'.repeat(500);
  const r = await putScaling(srv, 'zero', { desired_concurrency: 5, reason });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.reason, reason);
});

test('x_request_id_is_echoed_when_valid', async () => {
  const r = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read, headers: { 'X-Request-Id': 'ci-run-42.step:7' } });
  assert.equal(r.headers['x-request-id'], 'ci-run-42.step:7');
  const bad = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read, headers: { 'X-Request-Id': 'has space' } });
  assert.match(bad.headers['x-request-id'], /^[0-9a-f]{16}$/);
});

test('sluicectl_user_agent_is_audited_as_cli', async () => {
  const r = await srv.request('PUT', '/api/v1/scaling/zero', { token: srv.tokens.admin, headers: { 'User-Agent': 'sluicectl/0.1' },
    json: { desired_concurrency: 6, reason: 'from the cli' } });
  assert.equal(r.status, 200, r.text);
  const h = await srv.request('GET', '/api/v1/scaling/zero/history?limit=1', { token: srv.tokens.read });
  assert.equal(h.json.items[0].source, 'cli');
});
