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

// ---- cron against the clock, across DST changes ------------------------------------
// sluice.cron(expr):last(now) from sluiced (glibc's zone data) against a
// minute-by-minute reference (Node's Intl, its own copy of the zone data),
// around the DST changes of zones with 1-hour, 30-minute and midnight
// changes. The reference walks every instant minute: a wall minute fires
// the first time the clock shows it, and the minutes a jump skips fire at
// the jump (docs/lua-api.md, "Time zone and DST").

const LOOKBACK = 8 * 86400 * 1000;

function cronField(text, lo, hi, starHi = hi) {
  const set = new Set();
  for (let part of text.split(',')) {
    let step = 1;
    if (part.includes('/')) [part, step] = [part.split('/')[0], Number(part.split('/')[1])];
    const [a, b] = part === '*' ? [lo, starHi] : part.includes('-') ? part.split('-').map(Number) : [Number(part), Number(part)];
    for (let v = a; v <= b; v += step) set.add(v);
  }
  return set;
}

// The reference matcher, on wall minutes counted like the library's.
function cronMatcher(expr) {
  const w = expr.split(' ');
  const [mi, h, dom, mo, dow] = [cronField(w[0], 0, 59), cronField(w[1], 0, 23), cronField(w[2], 1, 31),
    cronField(w[3], 1, 12), cronField(w[4], 0, 7, 6)];
  if (dow.has(7)) dow.add(0);
  const either = !w[2].startsWith('*') && !w[4].startsWith('*');
  return (wall) => {
    const d = new Date(wall * 60000);
    if (!mi.has(d.getUTCMinutes()) || !h.has(d.getUTCHours()) || !mo.has(d.getUTCMonth() + 1)) return false;
    const a = dom.has(d.getUTCDate()), b = dow.has(d.getUTCDay());
    return either ? a || b : a && b;
  };
}

function wallMinute(fmt, ms) {
  const p = Object.fromEntries(fmt.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute) / 60000;
}

function referenceLast(expr, now, tz) {
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric',
    month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
  const matches = cronMatcher(expr);
  let shown = null, last = null;
  for (let t = Math.floor((now - LOOKBACK) / 60000) * 60000 - 3 * 3600000; t <= now; t += 60000) {
    const wall = wallMinute(fmt, t);
    if (shown !== null && wall <= shown) continue;      // a repeated minute
    let fired = false;
    for (let x = shown === null ? wall : shown + 1; x <= wall && !fired; x++) fired = matches(x);
    shown = wall;
    if (fired && t >= now - LOOKBACK) last = t;
  }
  return last;
}

const EXPRS = ['30 2 * * *', '0 3 * * *', '* * * * *', '*/7 1-4 * * *', '0 0 * * *', '45 0 * * 0',
  '0 12 13 * 5', '15 2 * * 0', '0 0 1 * *', '59 1 * * *', '0,30 2 * * *', '0 9 * * 1-5', '0 0 */2 * 5'];
const CHANGES = {
  'Europe/Berlin': ['2026-03-29T01:00Z', '2026-10-25T01:00Z'],
  'America/New_York': ['2026-03-08T07:00Z', '2026-11-01T06:00Z'],
  'Australia/Lord_Howe': ['2026-04-04T15:00Z', '2026-10-03T15:30Z'],   // 30-minute changes
  'America/Santiago': ['2026-04-05T03:00Z', '2026-09-06T04:00Z'],      // at midnight
};

test('cron_last_matches_a_minute_by_minute_reference_across_dst_changes', () => {
  let seed = 19;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const dir = tempDir();
  let compared = 0;
  try {
    for (const [tz, changes] of Object.entries(CHANGES)) {
      const cases = [];
      for (const c of changes) {
        const at = Date.parse(c);
        for (let i = 0; i < 12; i++) {
          // Near the change, and up to 8 days after it (the lookback spans it).
          const span = i < 8 ? 5 * 3600 : 8 * 86400;
          cases.push([EXPRS[rand(EXPRS.length)], at + (rand(span + 3 * 3600) - 3 * 3600) * 1000 + [0, 1, 59999][rand(3)]]);
        }
      }
      const lua = cases.map(([e, now]) => `out[#out + 1] = tostring(sluice.cron("${e}"):last(${now}))`).join('\n');
      writeFileSync(join(dir, 'a.lua'), `queue "q" { default = 1, min = 0, max = 2 }\nlocal out = {}\n${lua}\n` +
        'error("OUT " .. table.concat(out, ","))\n');
      const r = cli(['policy', 'check', dir], { env: { ...process.env, TZ: tz } });
      const got = r.stdout.trim().split('OUT ')[1].split(',');
      assert.equal(got.length, cases.length, r.stdout);
      cases.forEach(([e, now], i) => {
        const want = referenceLast(e, now, tz);
        assert.equal(got[i], want === null ? 'nil' : String(want), `${tz} "${e}" at ${new Date(now).toISOString()}`);
        compared++;
      });
    }
    assert.equal(compared, 96);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
