// sandbox_limits.test.mjs — Lua that tries to run past its budget (an xpcall
// message handler, pattern backtracking, a __gc finalizer, a table function
// looping in C) is stopped with the documented error, by `sluiced policy
// check` and in a running server, without holding a thread.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, startServer, putScaling, assertError, waitFor, TEST_POLICY } from './harness.mjs';

const QUEUE = 'queue "a" { default = 1, min = 1, max = 2 }\n';
const dirs = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function policyDir(text) {
  const dir = tempDir('sluice-limits-');
  dirs.push(dir);
  mkdirSync(join(dir, 'p'));
  writeFileSync(join(dir, 'p', 'x.lua'), QUEUE + text);
  return join(dir, 'p');
}

const RUNAWAYS = [
  ['xpcall_heavy_handler',
    'xpcall(function() while true do end end, function(e) for i = 1, 3e8 do end return e end)\n',
    /^x\.lua: instruction budget exceeded \(5000000 instructions\)$/],
  ['xpcall_endless_handler',
    'xpcall(function() while true do end end, function(e) while true do end end)\n',
    /^x\.lua: instruction budget exceeded \(5000000 instructions\)$/],
  ['pattern_backtracking', 'local x = ("a"):rep(300):find(".-.-.-.-b")\n',
    /^x\.lua:2: pattern matching took too many steps: instruction budget exceeded \(5000000 instructions\)$/],
  ['gc_finalizer', 'setmetatable({}, {__gc = function() while true do end end})\n',
    /^x\.lua:2: __gc metamethods are not allowed in the sandbox$/],
  ['table_move', 'table.move({}, 1, 1e15, 2)\n',
    /^x\.lua:2: instruction budget exceeded \(5000000 instructions\)$/],
];

for (const [name, text, want] of RUNAWAYS) {
  test(`policy_check_stops_${name}`, () => {
    const t0 = Date.now();
    const r = cli(['policy', 'check', policyDir(text)]);
    assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout.trim(), want);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });
}

test('print_is_not_available_to_policies', () => {
  const r = cli(['policy', 'check', policyDir('print("hello")\n')]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /x\.lua:2: attempt to call a nil value \(global 'print'\)/);
});

// validate runs under the policy lock, while the store's write lock is held:
// a runaway must end within its budget and leave reads alone.
const RUNAWAY_POLICY = TEST_POLICY.replace('function validate(change, ctx)', `function validate(change, ctx)
  if change.reason == "pattern" then return ("a"):rep(300):find(".-.-.-.-b") ~= nil end
  if change.reason == "handler" then
    xpcall(function() while true do end end, function(e) while true do end end)
  end
  if change.reason == "slow" then for i = 1, 6e7 do end end`);

test('runaway_validate_is_refused_within_its_budget_and_reads_go_on', async () => {
  const srv = await startServer({ policies: RUNAWAY_POLICY });
  try {
    for (const [reason, want] of [['pattern', /pattern matching took too many steps/],
      ['handler', /instruction budget exceeded/]]) {
      const t0 = Date.now();
      const put = putScaling(srv, 'guarded', { desired_concurrency: 5, reason });
      const get = (async () => {
        const g0 = Date.now();
        const g = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
        return { g, ms: Date.now() - g0 };
      })();
      const r = await put;
      assertError(r, 422, 'policy_rejected');
      assert.equal(r.json.error.details.check, 'validate_error');
      assert.match(r.json.error.message, /^guarded: validate\(\) failed: /);
      assert.match(r.json.error.message, want);
      assert.ok(Date.now() - t0 < 3000, `${reason}: took ${Date.now() - t0} ms`);
      const { g, ms } = await get;
      assert.equal(g.status, 200);
      assert.ok(ms < 1000, `${reason}: a concurrent GET took ${ms} ms`);
    }
    const ok = await putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'fine' });
    assert.equal(ok.status, 200, ok.text);
  } finally {
    await srv.cleanup();
  }
});

// validate() never runs inside the store's write transaction: while one
// runs to the end of its budget, another write that needs the database's
// write lock (a flag) and reads of every kind go on at their usual speed.
test('validate_runs_outside_the_write_lock', async () => {
  // A budget large enough for a validate() that takes a good fraction of a second.
  const srv = await startServer({ policies: RUNAWAY_POLICY, extraArgs: ['--lua-budget', '400000000'] });
  try {
    let putDone = 0;
    const put = putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'slow' })
      .then((r) => { putDone = Date.now(); return r; });
    await new Promise((r) => setTimeout(r, 50));       // validate() is running now
    const timed = async (fn) => { const s = Date.now(); const r = await fn(); return { r, ms: Date.now() - s }; };
    const flag = await timed(() => srv.request('PUT', '/api/v1/flags/writes',
      { token: srv.tokens.admin, json: { enabled: true, reason: 'during a slow validate' } }));
    const list = await timed(() => srv.request('GET', '/api/v1/scaling', { token: srv.tokens.read }));
    const metrics = await timed(() => srv.request('GET', '/metrics'));
    const othersDone = Date.now();
    const r = await put;
    assert.equal(r.status, 200, r.text);
    assert.ok(putDone === 0 || putDone >= othersDone,
      `validate() ended ${othersDone - putDone} ms before the other requests: the test proves nothing`);
    for (const [name, { r: res, ms }] of Object.entries({ flag, list, metrics })) {
      assert.equal(res.status, 200, `${name}: ${res.text}`);
      assert.ok(ms < 400, `${name} took ${ms} ms while validate() ran`);
    }
    // The flag change committed while validate() ran; the change after it.
    const audit = await srv.request('GET', '/api/v1/audit?limit=2', { token: srv.tokens.admin });
    assert.deepEqual(audit.json.items.map((e) => [e.kind, e.outcome, e.queue ?? e.flag]),
      [['scaling', 'applied', 'guarded'], ['flag', 'applied', 'writes']]);
  } finally {
    await srv.cleanup();
  }
});

// Alert rules run in a Lua state of their own: a rule that spends its whole
// budget on every tick does not slow down validate() or any request.
test('a_runaway_alert_rule_does_not_delay_changes', async () => {
  const policy = RUNAWAY_POLICY + `
alert "spinner" { severity = "info", queue = function(q) while true do end end }
`;
  const srv = await startServer({ policies: policy });
  try {
    await new Promise((r) => setTimeout(r, 1500));      // the ticker is busy spinning
    const worst = [];
    for (let i = 0; i < 4; i++) {
      const s = Date.now();
      const r = await putScaling(srv, 'alpha', { desired_concurrency: 5 + i, reason: `step ${i}` });
      worst.push(Date.now() - s);
      assert.equal(r.status, 200, r.text);
    }
    assert.ok(Math.max(...worst) < 400, `changes took ${worst.join(', ')} ms`);
    await waitFor(() => /alert rule failed/.test(srv.log), 5000);
  } finally {
    await srv.cleanup();
  }
});

// validate() judged a snapshot: when another change lands meanwhile, the
// change is judged again on the new state instead of being applied on a
// verdict about an old one. Both land, one after the other, nothing lost.
test('a_change_that_landed_during_validate_makes_the_other_judge_again', async () => {
  const srv = await startServer({ policies: RUNAWAY_POLICY, extraArgs: ['--lua-budget', '400000000'] });
  try {
    const [a, b] = await Promise.all([
      putScaling(srv, 'guarded', { desired_concurrency: 5, reason: 'slow' }),
      (async () => { await new Promise((r) => setTimeout(r, 30));
        return putScaling(srv, 'guarded', { desired_concurrency: 6, reason: 'slow' }); })(),
    ]);
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    const [first, second] = a.json.version < b.json.version ? [a.json, b.json] : [b.json, a.json];
    assert.equal(second.version, first.version + 1);
    assert.equal(second.previous, first.desired_concurrency, 'the later change saw the earlier one');
    assert.match(srv.log, /another change landed while validate\(\) ran; judging again/);
    const now = (await srv.request('GET', '/api/v1/scaling/guarded', { token: srv.tokens.read })).json;
    assert.equal(now.version, second.version);
    assert.equal(now.desired_concurrency, second.desired_concurrency);
  } finally {
    await srv.cleanup();
  }
});
