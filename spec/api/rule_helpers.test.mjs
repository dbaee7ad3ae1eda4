// rule_helpers.test.mjs — the autoscaling rule helpers (engine/autoscale_lib.*)
// as an operator meets them before any rule runs: `sluiced policy check`
// loads them in every policy state and names a bad cron expression with
// file:line, the field and the expression. The helpers' arithmetic and clock
// are pinned in spec/unit/test_autoscale_lib.c.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir, TEST_POLICY } from './harness.mjs';

const GOOD = `
local office = sluice.schedule{
  { cron = "0 9 * * mon-fri", desired = 16 },
  { cron = "0 19 * * 1-5",    desired = 4 },
  default = 2,
}
local backlog = sluice.backlog_target{ per_slot = 50, max = 24 }
assert(office({ min = 1 }, { now = 0 }) ~= nil)
assert(backlog({ waiting = 1150, active = 50 }, { now = 0 }) == 24)
assert(sluice.localtime(0).year >= 1969)
`;

test('policy_check_loads_the_rule_helpers_and_names_a_bad_cron_with_file_line', () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'a.lua'), TEST_POLICY);
    writeFileSync(join(dir, 'rules.lua'), GOOD);
    let r = cli(['policy', 'check', dir]);
    assert.equal(r.status, 0, r.stdout + r.stderr);

    writeFileSync(join(dir, 'rules.lua'), GOOD.replace('"0 19 * * 1-5"', '"0 19 * * 1-8"'));
    r = cli(['policy', 'check', dir]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout.trim(),
      'rules.lua:2: sluice.schedule: entry 2: cron "0 19 * * 1-8": day-of-week: 8 is out of range 0-7');

    writeFileSync(join(dir, 'rules.lua'), '\nlocal every = sluice.cron("*/5 * * *")\n');
    r = cli(['policy', 'check', dir]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout.trim(), 'rules.lua:2: cron "*/5 * * *": expected 5 fields ' +
      '(minute hour day-of-month month day-of-week), got 4');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
