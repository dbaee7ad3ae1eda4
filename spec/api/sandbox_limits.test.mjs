// sandbox_limits.test.mjs — Lua that tries to run past its budget (an xpcall
// message handler, pattern backtracking, a __gc finalizer, a table function
// looping in C) is stopped with the documented error, by `sluiced policy
// check` and in a running server, without holding a thread.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, startServer, putScaling, assertError, TEST_POLICY } from './harness.mjs';

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
  end`);

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
