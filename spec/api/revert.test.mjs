// revert.test.mjs — any past value is one step away (issue 18): a revert
// applies the value a version set, through every check (approval
// included), audited with from_version.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, putScaling, assertError, createToken } from './harness.mjs';

const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 32 }
queue "alpha" { }
queue "cool"  { cooldown_s = 600 }
queue "conf"  { confirm_above = 10 }
queue "big"   { approve_above = 16 }
queue "step"  { max_step = 4 }
`;

let srv;
let bob;
before(async () => {
  srv = await startServer({ policies: POLICY });
  bob = createToken(srv.dbUrl, 'bob', 'scaling:read,scaling:approve');
});
after(async () => { await srv.cleanup(); });

const revert = (queue, json, token = srv.tokens.readwrite) =>
  srv.request('POST', `/api/v1/scaling/${queue}/revert`, { token, json });
const set = async (queue, to, extra = {}) => {
  const r = await putScaling(srv, queue, { desired_concurrency: to, reason: `to ${to}`, ...extra });
  assert.equal(r.status, 200, r.text);
  return r.json;
};
const history = async (queue) =>
  (await srv.request('GET', `/api/v1/scaling/${queue}/history`, { token: srv.tokens.read })).json.items;

test('revert_applies_the_value_an_older_version_set_and_audits_from_version', async () => {
  await set('alpha', 8);            // version 1
  await set('alpha', 12);           // version 2
  await set('alpha', 20);           // version 3
  const r = await revert('alpha', { to_version: 1, reason: 'back to the calm value' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.desired_concurrency, 8);
  assert.equal(r.json.version, 4);
  assert.equal(r.json.previous, 20);
  assert.equal(r.json.updated_by, 'ci-job');
  const [entry] = await history('alpha');
  assert.deepEqual([entry.outcome, entry.from, entry.to, entry.version, entry.from_version, entry.reason],
    ['applied', 20, 8, 4, 1, 'back to the calm value']);
  // A revert is a version like any other: reverting to it works too.
  const again = await revert('alpha', { to_version: 3, reason: 'busy again' });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.desired_concurrency, 20);
  assert.equal((await history('alpha'))[0].from_version, 3);
});

test('revert_checks_its_input_and_the_version', async () => {
  assertError(await revert('alpha', { to_version: 99, reason: 'x' }), 404, 'unknown_version');
  assertError(await revert('nope', { to_version: 1, reason: 'x' }), 404, 'unknown_queue');
  assertError(await revert('alpha', { to_version: 0, reason: 'x' }), 400, 'invalid_field');
  assertError(await revert('alpha', { reason: 'x' }), 400, 'invalid_field');
  assertError(await revert('alpha', { to_version: 1 }), 400, 'invalid_field');
  assertError(await revert('alpha', { to_version: 1, reason: 'x', extra: 1 }), 400, 'invalid_field');
  assertError(await revert('alpha', { to_version: 1, reason: 'x' }, srv.tokens.read), 403, 'forbidden');
  // Only applied changes set a version: a refused one does not.
  const refused = await putScaling(srv, 'conf', { desired_concurrency: 30, reason: 'too far' });
  assertError(refused, 428, 'confirmation_required');
  assertError(await revert('conf', { to_version: 1, reason: 'x' }), 404, 'unknown_version');
});

test('revert_goes_through_every_check', async () => {
  await set('conf', 20, { confirm: true });   // v1
  await set('conf', 6);                        // v2
  assertError(await revert('conf', { to_version: 1, reason: 'x' }), 428, 'confirmation_required');
  const ok = await revert('conf', { to_version: 1, reason: 'x', confirm: true });
  assert.equal(ok.status, 200, ok.text);
  await set('cool', 10);                       // v1, starts the cooldown
  const cool = await revert('cool', { to_version: 1, reason: 'same value' });
  assert.equal(cool.status, 200, cool.text);  // the current value: no move, no limit
  assert.equal(cool.json.changed, false);
  await set('step', 8);                        // v1 (4 → 8)
  await set('step', 12);                       // v2
  await set('step', 16);                       // v3
  const far = await revert('step', { to_version: 1, reason: 'too far back' });
  assertError(far, 422, 'step_too_large');
  const [entry] = await history('step');
  assert.deepEqual([entry.outcome, entry.error_code, entry.from_version], ['rejected', 'step_too_large', 1]);
});

test('a_revert_above_approve_above_waits_for_approval', async () => {
  const asked = await putScaling(srv, 'big', { desired_concurrency: 30, reason: 'peak' });
  assert.equal(asked.status, 202, asked.text); // admin or not, above approve_above waits
  const h = await history('big');
  assert.equal(h[0].outcome, 'pending_approval');
  // Approve it, then change and revert to it: the revert waits too.
  const [first] = (await srv.request('GET', '/api/v1/approvals', { token: bob })).json.items;
  assert.equal((await srv.request('POST', `/api/v1/approvals/${first.id}/approve`, { token: bob, json: {} })).status, 200);
  await set('big', 8);                         // v2
  const r = await revert('big', { to_version: 1, reason: 'back up' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.approval.from_version, 1);
  assert.equal(r.json.approval.to, 30);
  assert.equal(r.json.approval.from, 8);
  const ok = await srv.request('POST', `/api/v1/approvals/${r.json.approval.id}/approve`, { token: bob, json: {} });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.change.desired_concurrency, 30);
  const steps = (await history('big')).filter((e) => e.approval_id === r.json.approval.id);
  assert.deepEqual(steps.map((e) => [e.outcome, e.from_version]),
    [['applied', 1], ['approved', 1], ['pending_approval', 1]]);
});
