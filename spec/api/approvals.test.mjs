// approvals.test.mjs — a change above approve_above waits for a second
// person (issue 18): 202 and nothing changed, listed for approvers, never
// approved by its requester, applied through every check as of the moment
// it is approved (and reaching real workers), rejected with a reason, or
// expired by the leader; every step in the audit log with its approval_id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, assertError, createToken, cli, tempDir } from './harness.mjs';
import { startRedis, startWorker, reports, waitFor } from './fleet_harness.mjs';

const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 32 }
queue "big"    { approve_above = 16 }
queue "self"   { approve_above = 16 }
queue "rej"    { approve_above = 16 }
queue "short"  { approve_above = 16, approval_ttl_s = 1 }
queue "cool"   { approve_above = 16, cooldown_s = 600 }
queue "bounds" { approve_above = 16 }
queue "asks"   { }
queue "conf"   { approve_above = 16, confirm_above = 10 }
function validate(change, ctx)
  if change.queue == "asks" and change.reason:find("night") and not change.approved then
    return "approval", "changes at night need a second person"
  end
  return true
end
`;

let redis;
let srv;
const tok = {};
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
  tok.carol = createToken(srv.dbUrl, 'carol', 'scaling:read,scaling:write');
  tok.alice = createToken(srv.dbUrl, 'alice', 'scaling:read,scaling:write,scaling:approve');
  tok.bob = createToken(srv.dbUrl, 'bob', 'scaling:read,scaling:approve');
  // Another token of the same person: still not a second person.
  tok.carol2 = createToken(srv.dbUrl, 'carol', 'scaling:read,scaling:approve');
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

const writePolicy = (text) => writeFileSync(join(srv.policyDir, 'test.lua'), text);
const get = (path, token = srv.tokens.admin) => srv.request('GET', path, { token });
const post = (path, json, token) => srv.request('POST', path, { token, json });
const approve = (id, token, reason) => post(`/api/v1/approvals/${id}/approve`, reason ? { reason } : {}, token);
const reject = (id, token, reason) => post(`/api/v1/approvals/${id}/reject`, reason === undefined ? {} : { reason }, token);
const audit = async (queue) => (await get(`/api/v1/audit?queue=${queue}&limit=50`)).json.items;

// Ask for queue → to as carol; returns the approval.
async function ask(queue, to, extra = {}) {
  const r = await putScaling(srv, queue, { desired_concurrency: to, reason: `scale ${queue}`, ...extra }, tok.carol);
  assert.equal(r.status, 202, r.text);
  return r.json.approval;
}

test('a_change_above_approve_above_answers_202_and_changes_nothing', async () => {
  const before = (await get('/api/v1/scaling/big')).json;
  const a = await ask('big', 20);
  assert.match(a.id, /^[0-9a-f]{16}$/);
  assert.equal(a.status, 'pending');
  assert.equal(a.queue, 'big');
  assert.equal(a.from, 4);
  assert.equal(a.to, 20);
  assert.equal(a.requested_by, 'carol');
  assert.equal(a.reason, 'scale big');
  assert.equal(a.source, 'api');
  assert.equal(a.decided_by, null);
  const ttl = Date.parse(a.expires_at) - Date.parse(a.requested_at);
  assert.equal(ttl, 3600 * 1000);
  const after = (await get('/api/v1/scaling/big')).json;
  assert.equal(after.version, before.version);
  assert.equal(after.desired_concurrency, 4);
  // Below the threshold nothing waits.
  const small = await putScaling(srv, 'bounds', { desired_concurrency: 16, reason: 'at the line' }, tok.carol);
  assert.equal(small.status, 200, small.text);
  // The request is audited as pending_approval with its id, by the requester.
  const [entry] = await audit('big');
  assert.equal(entry.outcome, 'pending_approval');
  assert.equal(entry.approval_id, a.id);
  assert.equal(entry.actor, 'carol');
  assert.equal(entry.from, 4);
  assert.equal(entry.to, 20);
  assert.equal(entry.from_version, null);
  const filtered = (await get('/api/v1/audit?outcome=pending_approval')).json.items;
  assert.ok(filtered.some((e) => e.approval_id === a.id));
  // A second request while one is pending is refused, naming the pending one.
  const again = await putScaling(srv, 'big', { desired_concurrency: 24, reason: 'more' }, tok.carol);
  assertError(again, 409, 'approval_pending');
  assert.equal(again.json.error.details.approval_id, a.id);
  assert.equal((await audit('big'))[0].error_code, 'approval_pending');
  // Listed for approvers (pending by default), readable by id for readers.
  const list = await get('/api/v1/approvals', tok.bob);
  assert.equal(list.status, 200, list.text);
  assert.ok(list.json.items.some((x) => x.id === a.id && x.status === 'pending'));
  const one = await get(`/api/v1/approvals/${a.id}`, srv.tokens.read);
  assert.equal(one.status, 200);
  assert.equal(one.json.to, 20);
  assertError(await get('/api/v1/approvals/0123456789abcdef', srv.tokens.read), 404, 'unknown_approval');
});

test('the_approval_routes_need_scaling_approve', async () => {
  const a = await ask('conf', 20, { confirm: true });
  assertError(await get('/api/v1/approvals', tok.carol), 403, 'forbidden');
  assertError(await approve(a.id, tok.carol), 403, 'forbidden');
  assertError(await reject(a.id, srv.tokens.readwrite, 'no'), 403, 'forbidden');
  assertError(await get('/api/v1/approvals?status=maybe', tok.bob), 400, 'invalid_field');
  assertError(await get('/api/v1/approvals?limit=0', tok.bob), 400, 'invalid_field');
  assertError(await get('/api/v1/approvals?queue=conf', tok.bob), 400, 'invalid_field');
  assertError(await post(`/api/v1/approvals/${a.id}/approve`, { because: 'x' }, tok.bob), 400, 'invalid_field');
  assertError(await reject(a.id, tok.bob, 'x'.repeat(501)), 400, 'invalid_field');
  assertError(await reject(a.id, tok.bob, 7), 400, 'invalid_field');
  // Confirmation is judged before approval: unconfirmed is 428, not 202.
  const unconfirmed = await putScaling(srv, 'conf', { desired_concurrency: 18, reason: 'x' }, tok.alice);
  assertError(unconfirmed, 428, 'confirmation_required');
  assert.equal((await get(`/api/v1/approvals/${a.id}`)).json.status, 'pending');
});

test('the_requester_cannot_approve_and_nothing_is_applied', async () => {
  const r = await putScaling(srv, 'self', { desired_concurrency: 30, reason: 'mine' }, tok.alice);
  assert.equal(r.status, 202, r.text);
  const id = r.json.approval.id;
  const same = await approve(id, tok.alice);
  assertError(same, 403, 'forbidden');
  assert.match(same.json.error.message, /another person must approve/);
  const a = await ask('rej', 30);
  // The same name on another token is the same person.
  assertError(await approve(a.id, tok.carol2), 403, 'forbidden');
  assert.equal((await get('/api/v1/scaling/self')).json.version, 0);
  assert.equal((await get(`/api/v1/approvals/${id}`)).json.status, 'pending');
  // The requester may withdraw it (reject), with a reason.
  const w = await reject(id, tok.alice, 'asked by mistake');
  assert.equal(w.status, 200, w.text);
  assert.equal(w.json.approval.status, 'rejected');
});

test('a_second_person_approves_and_real_workers_apply_it', async () => {
  const seen = await reports(redis);
  const w = startWorker(redis, 'big', ['--id', 'big-1']);
  try {
    assert.ok(await waitFor(() => seen.latest['big-1'], 5000), 'worker did not report');
    const [pending] = (await get('/api/v1/approvals?status=pending', tok.bob)).json.items.filter((x) => x.queue === 'big');
    const r = await approve(pending.id, tok.bob, 'looked at the graphs');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.approval.status, 'approved');
    assert.equal(r.json.approval.decided_by, 'bob');
    assert.equal(r.json.approval.decision_reason, 'looked at the graphs');
    assert.equal(r.json.approval.result, 'applied');
    assert.equal(r.json.change.desired_concurrency, 20);
    assert.equal(r.json.change.version, 1);
    assert.equal(r.json.change.updated_by, 'carol');
    assert.ok(await waitFor(() => seen.latest['big-1'].version === 1 && seen.latest['big-1'].concurrency === 20, 5000),
      `worker did not apply: ${JSON.stringify(seen.latest['big-1'])}`);
    // pending_approval by carol, approved by bob, applied (carol's change) — one approval_id.
    const steps = (await audit('big')).filter((e) => e.approval_id === pending.id).reverse();
    assert.deepEqual(steps.map((e) => [e.outcome, e.actor, e.error_code]), [
      ['pending_approval', 'carol', null], ['rejected', 'carol', 'approval_pending'],
      ['approved', 'bob', null], ['applied', 'carol', null]]);
    assert.equal(steps[3].version, 1);
    assert.equal(steps[2].reason, 'looked at the graphs');
    // Decided once.
    assertError(await approve(pending.id, tok.alice), 409, 'approval_decided');
    assertError(await reject(pending.id, tok.alice, 'too late'), 409, 'approval_decided');
    assert.equal((await get('/api/v1/approvals?status=approved', tok.bob)).json.items[0].id, pending.id);
  } finally {
    await w.stop();
  }
});

test('a_rejection_needs_a_reason_and_is_audited', async () => {
  const [a] = (await get('/api/v1/approvals', tok.bob)).json.items.filter((x) => x.queue === 'rej');
  assertError(await reject(a.id, tok.bob), 400, 'invalid_field');
  assertError(await reject(a.id, tok.bob, '   '), 400, 'invalid_field');
  const r = await reject(a.id, tok.bob, 'not during the freeze');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.approval.status, 'rejected');
  assert.equal(r.json.approval.decision_reason, 'not during the freeze');
  assert.equal(r.json.approval.result, null);
  const [entry] = await audit('rej');
  assert.deepEqual([entry.outcome, entry.error_code, entry.actor, entry.approval_id, entry.reason],
    ['rejected', 'approval_rejected', 'bob', a.id, 'not during the freeze']);
  assertError(await approve(a.id, tok.alice), 409, 'approval_decided');
  assert.equal((await get('/api/v1/scaling/rej')).json.version, 0);
  // Decided: a new request may wait now.
  const next = await ask('rej', 18);
  assert.notEqual(next.id, a.id);
});

test('a_pending_approval_expires_after_approval_ttl_s', async () => {
  const a = await ask('short', 20);
  assert.equal(Date.parse(a.expires_at) - Date.parse(a.requested_at), 1000);
  assert.ok(await waitFor(async () => (await get(`/api/v1/approvals/${a.id}`)).json.status === 'expired', 5000));
  const [entry] = await audit('short');
  assert.deepEqual([entry.outcome, entry.actor, entry.source, entry.approval_id],
    ['expired', 'sluiced', 'sluiced', a.id]);
  const late = await approve(a.id, tok.bob);
  assertError(late, 409, 'approval_expired');
  assert.equal((await get('/api/v1/scaling/short')).json.version, 0);
  assert.ok((await get('/api/v1/approvals?status=expired', tok.bob)).json.items.some((x) => x.id === a.id));
});

test('approval_applies_the_checks_as_of_that_moment', async () => {
  // Asked while the queue could move; a change meanwhile starts the cooldown.
  const a = await ask('cool', 20);
  const meanwhile = await putScaling(srv, 'cool', { desired_concurrency: 10, reason: 'small step' }, tok.alice);
  assert.equal(meanwhile.status, 200, meanwhile.text);
  const r = await approve(a.id, tok.bob);
  assertError(r, 429, 'rate_limited');
  assert.equal(r.json.error.details.approval_id, a.id);
  const after = (await get(`/api/v1/approvals/${a.id}`)).json;
  assert.deepEqual([after.status, after.result, after.result_code], ['approved', 'rejected', 'rate_limited']);
  assert.equal((await get('/api/v1/scaling/cool')).json.desired_concurrency, 10);
  const steps = (await audit('cool')).filter((e) => e.approval_id === a.id).map((e) => [e.outcome, e.error_code]);
  assert.deepEqual(steps, [['rejected', 'rate_limited'], ['approved', null], ['pending_approval', null]]);

  // A policy reload that lowers max between the request and the approval.
  const b = await ask('bounds', 40);
  writePolicy(POLICY.replace('queue "bounds" { approve_above = 16 }', 'queue "bounds" { approve_above = 16, max = 30 }'));
  assert.ok(await waitFor(async () => (await get('/api/v1/scaling/bounds')).json.bounds.max === 30, 5000));
  assertError(await approve(b.id, tok.bob), 422, 'out_of_bounds');
  assert.equal((await get(`/api/v1/approvals/${b.id}`)).json.result_code, 'out_of_bounds');
  writePolicy(POLICY);
});

test('validate_may_ask_for_approval', async () => {
  const r = await putScaling(srv, 'asks', { desired_concurrency: 6, reason: 'night shift' }, tok.carol);
  assert.equal(r.status, 202, r.text);
  const day = await putScaling(srv, 'conf', { desired_concurrency: 6, reason: 'day shift' }, tok.carol);
  assert.equal(day.status, 200, day.text);
  const ok = await approve(r.json.approval.id, tok.bob);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.change.desired_concurrency, 6);
});

test('policy_check_knows_approve_above_and_approval_ttl_s', (t) => {
  const top = tempDir();
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, 'p');
  mkdirSync(dir);
  const check = (spec) => {
    writeFileSync(join(dir, 'q.lua'), `defaults { default = 4, min = 1, max = 64 }\nqueue "q" { ${spec} }\n`);
    return cli(['policy', 'check', dir]);
  };
  assert.equal(check('approve_above = 16, approval_ttl_s = 60').status, 0);
  const bad = [
    ['approve_above = "x"', /q\.lua:2: queue 'q': approve_above must be an integer/],
    ['approve_above = 1.5', /q\.lua:2: queue 'q': approve_above must be an integer/],
    ['approve_above = -1', /q\.lua:2: queue 'q': approve_above must be in 0\.\.100000, got -1/],
    ['approval_ttl_s = 0', /q\.lua:2: queue 'q': approval_ttl_s must be in 1\.\.604800, got 0/],
    ['approval_ttl_s = 700000', /approval_ttl_s must be in 1\.\.604800, got 700000/],
  ];
  for (const [spec, message] of bad) {
    const r = check(spec);
    assert.equal(r.status, 1, spec);
    assert.match(r.stdout + r.stderr, message);
  }
});
