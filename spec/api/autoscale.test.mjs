// autoscale.test.mjs — the autoscaler (issue 19) against real sluice-worker
// processes, a real producer and Redis: a burst raises desired within two
// periods in steps within max_step and never above confirm_above, then it
// falls back once the backlog drained and the scale-down window passed;
// every applied decision is audited as autoscaler:QUEUE with the rule's
// reason; a dry run changes nothing but shows its proposal; a manual change
// and an explicit hold hold the rule; a refusal repeated is audited once; a
// rule that errors and one that runs away are contained and shown while
// the others keep working; with two replicas on PostgreSQL only the leader
// decides.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, assertError, cli, tempDir, BACKEND, BUILD } from './harness.mjs';
import { startRedis, startWorker, produce, reports, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = `
defaults { default = 2, min = 1, max = 32, max_step = 8 }
queue "burst"  { default = 2, min = 1, max = 20, max_step = 4, confirm_above = 12 }
queue "dry"    { }
queue "manual" { }
queue "held"   { }
queue "refuse" { }
queue "above"  { confirm_above = 3 }
queue "broken" { }
queue "spin"   { }
queue "plain"  { }
autoscale "burst" {
  every_s = 1, scale_down_window_s = 3, hold_after_manual_s = 0,
  rule = function(q, ctx)
    if q.waiting == nil then return nil, "no depth yet" end
    local want = math.max(1, math.ceil((q.waiting + q.active) / 5))
    return want, string.format("%d waiting+active, 5 per slot -> %d", q.waiting + q.active, want)
  end,
}
autoscale "dry" { every_s = 1, dry_run = true, rule = function(q) return q.desired + 3, "three more" end }
autoscale "manual" { every_s = 1, hold_after_manual_s = 3, rule = function(q) return 6, "six" end }
autoscale "held" { every_s = 1, hold_after_manual_s = 0, rule = function(q) return 7, "seven" end }
autoscale "refuse" { every_s = 1, rule = function(q) return 5, "five" end }
autoscale "above" { every_s = 1, allow_above_confirm = true, rule = function(q) return 6, "past confirm" end }
autoscale "broken" { every_s = 1, rule = function(q) return q.no.such end }
autoscale "spin" { every_s = 1, rule = function(q) while true do end end }
queue "ctl" { }
autoscale "ctl" { every_s = 1, dry_run = true, rule = function(q) return 4, "ctl" end }
autoscale "plain" { every_s = 1, rule = function(q, ctx) return 3, "history " .. #ctx.history end }
function validate(change, ctx)
  if change.queue == "refuse" and change.source == "autoscaler" then
    return false, "no automation on this queue"
  end
  return true
end
`;

let redis, srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
});
after(async () => { try { await srv?.cleanup(); } finally { await redis?.cleanup(); } });

const item = async (queue, s = srv) => {
  const r = await s.request('GET', `/api/v1/autoscalers/${queue}`, { token: s.tokens.read });
  assert.equal(r.status, 200, r.text);
  return r.json;
};
const desired = async (queue) =>
  (await srv.request('GET', `/api/v1/scaling/${queue}`, { token: srv.tokens.read })).json.desired_concurrency;
const audit = async (queue, extra = '') =>
  (await srv.request('GET', `/api/v1/audit?queue=${queue}&limit=500${extra}`, { token: srv.tokens.read })).json.items;

test('a_burst_is_absorbed_in_steps_within_max_step_never_above_confirm_above_and_falls_back_after_the_window', async () => {
  const seen = await reports(redis);
  const ws = [1, 2].map((i) => startWorker(redis, 'burst', ['--id', `burst-${i}`, '--concurrency', '1', '--max', '20']));
  try {
    assert.ok(await waitFor(() => Object.keys(seen.latest).length === 2, 5000), 'workers did not report');
    // Idle, the rule wants the minimum; the queue starts at its default 2.
    assert.ok(await waitFor(async () => (await desired('burst')) === 1, 8000), 'idle queue not brought to min');
    const start = Date.now();
    await produce(redis, 'burst', 400, ['--sleep-ms', '150']);
    // Within two periods (every_s = 1, plus a depth read a second apart).
    const first = await waitFor(async () => (await audit('burst')).find((e) => e.outcome === 'applied' && e.to > 1 && Date.parse(e.at) >= start), 3000, 100);
    assert.ok(first, 'no scale-up within two periods');
    assert.ok(Date.parse(first.at) - start <= 3000, `first scale-up after ${Date.parse(first.at) - start} ms`);
    assert.ok(await waitFor(async () => (await desired('burst')) === 12, 8000), 'did not reach confirm_above');
    // The backlog drains; after the 3 s window the value comes back down to min.
    assert.ok(await waitFor(async () => (await desired('burst')) === 1, 40000, 200), 'did not fall back');
    const changes = (await audit('burst', '&source=autoscaler')).filter((e) => e.outcome === 'applied').reverse();
    for (const e of changes) {
      assert.equal(e.actor, 'autoscaler:burst');
      assert.equal(e.source, 'autoscaler');
      assert.match(e.reason, /^\d+ waiting\+active, 5 per slot -> \d+$/);
      assert.ok(Math.abs(e.to - e.from) <= 4, `step ${e.from} -> ${e.to} beyond max_step`);
      assert.ok(e.to <= 12, `${e.to} above confirm_above`);
    }
    // Down only after the window: 12 was proposed when it was reached, so
    // the first move down comes at least 3 s later.
    const top = changes.findIndex((e) => e.to === 12);
    const down = changes.findIndex((e, i) => i > top && e.to < e.from);
    assert.ok(top >= 0 && down > top, JSON.stringify(changes));
    assert.ok(Date.parse(changes[down].at) - Date.parse(changes[top].at) >= 3000, JSON.stringify(changes));
    const it = await item('burst');
    assert.equal(it.error, null);
    assert.ok(it.decisions.length >= 3 && it.decisions.length <= 20);
    assert.ok(it.decisions.some((d) => d.outcome === 'stabilizing'), JSON.stringify(it.decisions));
    assert.ok(it.decisions.some((d) => d.outcome === 'applied' && /stepped to/.test(d.message || '')));
  } finally {
    await Promise.all(ws.map((w) => w.stop()));
  }
});

test('a_dry_run_changes_nothing_and_shows_what_it_would_do', async () => {
  const it = await waitFor(async () => {
    const x = await item('dry');
    return x.last_decision?.outcome === 'dry_run' && x;
  }, 5000);
  assert.ok(it, 'no dry-run decision');
  assert.equal(it.dry_run, true);
  assert.equal(it.last_decision.proposal, 5);
  assert.equal(it.last_decision.from, 2);
  assert.equal(it.last_decision.to, 5);
  assert.equal(it.last_decision.reason, 'three more');
  assert.match(it.last_decision.message, /would apply 5/);
  const t = (await srv.request('GET', '/api/v1/scaling/dry', { token: srv.tokens.read })).json;
  assert.equal(t.version, 0);
  assert.equal(t.desired_concurrency, 2);
  assert.deepEqual(await audit('dry'), []);
});

test('a_manual_change_holds_the_rule_for_hold_after_manual_s', async () => {
  assert.ok(await waitFor(async () => (await desired('manual')) === 6, 5000), 'rule did not apply');
  const r = await putScaling(srv, 'manual', { desired_concurrency: 3, reason: 'a person knows better' });
  assert.equal(r.status, 200, r.text);
  const heldAt = Date.now();
  const it = await waitFor(async () => {
    const x = await item('manual');
    return x.last_decision?.outcome === 'held' && x;
  }, 3000);
  assert.ok(it, 'not held');
  assert.equal(it.hold.kind, 'manual_change');
  assert.equal(it.hold.by, 'root-admin');
  assert.equal(it.hold.reason, 'a person knows better');
  assert.ok(Math.abs(Date.parse(it.held_until) - (heldAt + 3000)) < 1500, it.held_until);
  assert.equal(it.last_decision.proposal, 6);
  assert.equal(await desired('manual'), 3);
  // After the hold the rule applies again.
  assert.ok(await waitFor(async () => (await desired('manual')) === 6, 6000), 'not applied after the hold');
  assert.ok(Date.now() - heldAt >= 2900, 'applied before the hold ended');
  assert.equal((await item('manual')).hold, null);
});

test('an_explicit_hold_holds_until_released', async () => {
  assert.ok(await waitFor(async () => (await desired('held')) === 7, 5000), 'rule did not apply');
  const post = (path, json, token = srv.tokens.write) =>
    srv.request('POST', `/api/v1/autoscalers/held/${path}`, { token, json });
  assertError(await post('hold', { reason: 'no duration' }), 400, 'invalid_field');
  assertError(await post('hold', { duration_s: 0, reason: 'x' }), 400, 'invalid_field');
  assertError(await post('hold', { duration_s: 604801 }), 400, 'invalid_field');
  assertError(await post('hold', { duration_s: 60, extra: 1 }), 400, 'invalid_field');
  assertError(await post('hold', { duration_s: 60 }, srv.tokens.read), 403, 'forbidden');
  assertError(await srv.request('POST', '/api/v1/autoscalers/alpha/hold', { token: srv.tokens.write, json: { duration_s: 60 } }),
    404, 'unknown_queue');
  const h = await post('hold', { duration_s: 600, reason: 'incident 42' });
  assert.equal(h.status, 200, h.text);
  assert.equal(h.json.hold.kind, 'hold');
  assert.equal(h.json.hold.by, 'writer');
  assert.equal(h.json.hold.reason, 'incident 42');
  assert.ok(Math.abs(Date.parse(h.json.held_until) - (Date.now() + 600000)) < 5000);
  assert.equal((await putScaling(srv, 'held', { desired_concurrency: 2, reason: 'by hand' })).status, 200);
  assert.ok(await waitFor(async () => (await item('held')).last_decision?.outcome === 'held', 3000));
  await sleep(1500);
  assert.equal(await desired('held'), 2);
  const rel = await post('release', { reason: 'incident over' });
  assert.equal(rel.status, 200, rel.text);
  assert.equal(rel.json.hold, null);
  assert.ok(await waitFor(async () => (await desired('held')) === 7, 3000), 'not applied after release');
});

test('a_refusal_repeated_unchanged_is_audited_once', async () => {
  const it = await waitFor(async () => {
    const x = await item('refuse');
    return x.last_decision?.outcome === 'rejected' && x;
  }, 5000);
  assert.ok(it, 'no refusal');
  assert.equal(it.last_decision.error_code, 'policy_rejected');
  assert.match(it.last_decision.message, /no automation on this queue/);
  const firstAt = Date.parse(it.last_decision.at);
  assert.ok(await waitFor(async () => Date.parse((await item('refuse')).last_decision.at) - firstAt >= 2500, 5000));
  const rows = await audit('refuse');
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0].outcome, 'rejected');
  assert.equal(rows[0].error_code, 'policy_rejected');
  assert.equal(rows[0].actor, 'autoscaler:refuse');
  assert.equal(rows[0].reason, 'five');
});

test('allow_above_confirm_applies_above_confirm_above_with_confirmation', async () => {
  assert.ok(await waitFor(async () => (await desired('above')) === 6, 5000), 'not applied');
  const rows = await audit('above');
  assert.equal(rows.length, 1);
  assert.equal(rows[0].outcome, 'applied');
});

test('a_rule_that_errors_or_runs_away_is_contained_and_shown_while_others_keep_working', async () => {
  const list = await waitFor(async () => {
    const r = await srv.request('GET', '/api/v1/autoscalers', { token: srv.tokens.read });
    const by = Object.fromEntries(r.json.items.map((x) => [x.queue, x]));
    return by.broken?.error && by.spin?.error && by.plain?.last_decision?.outcome === 'unchanged' && r.json;
  }, 8000);
  assert.ok(list, 'errors not shown');
  assert.equal(list.leader, true);
  const by = Object.fromEntries(list.items.map((x) => [x.queue, x]));
  assert.match(by.broken.error.message, /test\.lua:\d+: attempt to index/);
  assert.equal(by.broken.last_decision.outcome, 'error');
  assert.match(by.spin.error.message, /budget/);
  assert.equal(by.spin.enabled, true);
  assert.ok(by.spin.next_evaluation_at, 'a failing rule keeps its schedule');
  assert.equal(await desired('broken'), 2);
  assert.equal(await desired('spin'), 2);
  assert.equal(await desired('plain'), 3);
  assert.equal(by.plain.every_s, 1);
  assert.equal(by.plain.hold_after_manual_s, 900);
  assert.equal(by.plain.scale_down_window_s, 300);
  assert.equal(by.plain.allow_above_confirm, false);
  assert.deepEqual(await audit('broken'), []);
  assertError(await srv.request('GET', '/api/v1/autoscalers/nope', { token: srv.tokens.read }), 404, 'unknown_queue');
});

function ctl(args) {
  const env = { ...process.env, SLUICE_URL: `http://127.0.0.1:${srv.port}`, SLUICE_TOKEN: srv.tokens.readwrite };
  return new Promise((res) => execFile(join(BUILD, 'sluicectl'), args, { env, timeout: 30000 },
    (err, stdout, stderr) => res({ code: err ? err.code : 0, stdout, stderr })));
}

test('sluicectl_lists_holds_and_releases_rules', async () => {
  assert.ok(await waitFor(async () => (await item('ctl')).last_decision, 5000));
  const list = await ctl(['autoscalers']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^QUEUE\s+MODE\s+HELD UNTIL\s+LAST\s+CHANGE\s+NEXT\s+WHY/);
  assert.match(list.stdout, /\nctl\s+dry-run\s+-\s+dry_run\s+2->4\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+ctl\n/);
  const bad = await ctl(['hold', 'ctl', '--reason', 'no duration']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /hold needs --duration/);
  const held = await ctl(['hold', 'ctl', '--duration', '1h', '--reason', 'deploy freeze']);
  assert.equal(held.code, 0, held.stderr);
  assert.match(held.stdout, /^held ctl until \d{4}-/);
  const it = await item('ctl');
  assert.equal(it.hold.reason, 'deploy freeze');
  assert.equal(it.hold.by, 'ci-job');
  const json = await ctl(['--json', 'autoscalers']);
  assert.equal(JSON.parse(json.stdout).items.find((x) => x.queue === 'ctl').hold.kind, 'hold');
  const rel = await ctl(['release', 'ctl', '--reason', 'freeze over']);
  assert.equal(rel.code, 0, rel.stderr);
  assert.equal(rel.stdout, 'released ctl\n');
  assert.equal((await item('ctl')).hold, null);
  const none = await ctl(['hold', 'nope', '--duration', '1m', '--reason', 'x']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /unknown_queue/);
});

test('a_hot_reload_replaces_the_rules_and_policy_check_knows_the_dsl', async () => {
  const next = POLICY
    .replace('autoscale "spin" { every_s = 1, rule = function(q) while true do end end }\n', '')
    .replace('return 3, "history " .. #ctx.history', 'return 5, "reloaded"');
  assert.notEqual(next, POLICY);
  writeFileSync(join(srv.policyDir, 'test.lua'), next);
  assert.ok(await waitFor(async () => (await desired('plain')) === 5, 5000), 'the new rule did not apply');
  assert.equal((await item('plain')).last_decision.reason, 'reloaded');
  assertError(await srv.request('GET', '/api/v1/autoscalers/spin', { token: srv.tokens.read }), 404, 'no_autoscaler');
  const list = (await srv.request('GET', '/api/v1/autoscalers', { token: srv.tokens.read })).json;
  assert.ok(!list.items.some((x) => x.queue === 'spin'));
  // A broken rule file keeps the rules in force, and policy check names the line.
  writeFileSync(join(srv.policyDir, 'test.lua'), next + '\nautoscale "ghost" { rule = function() end }\n');
  const dir = tempDir();
  writeFileSync(join(dir, 'x.lua'), next + '\nautoscale "ghost" { rule = function() end }\n');
  const r = cli(['policy', 'check', dir]);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 1);
  assert.match(r.stderr + r.stdout, /x\.lua:\d+: autoscale 'ghost': queue 'ghost' is not declared/);
  await sleep(500);
  assert.equal((await item('plain')).last_decision.reason, 'reloaded');
  writeFileSync(join(srv.policyDir, 'test.lua'), next);
});

const SOLO = `
queue "solo" { default = 2, min = 1, max = 10 }
autoscale "solo" { every_s = 1, rule = function(q) return 4, "four" end }
`;

test('with_two_replicas_only_the_leader_decides', { skip: BACKEND !== 'postgres' && 'PostgreSQL only' }, async () => {
  const r2 = await startRedis();
  let a, b;
  try {
    a = await startServer({ policies: SOLO, extraArgs: ['--redis', r2.url] });
    b = await startServer({ shareWith: a, policies: SOLO, extraArgs: ['--redis', r2.url] });
    const leaders = await waitFor(async () => {
      const la = (await a.request('GET', '/api/v1/autoscalers', { token: a.tokens.read })).json;
      const lb = (await b.request('GET', '/api/v1/autoscalers', { token: b.tokens.read })).json;
      return la.leader !== lb.leader && la.items[0]?.last_decision && lb.items[0]?.last_decision && [la, lb];
    }, 10000);
    assert.ok(leaders, 'no single leader, or the follower does not show the state');
    await sleep(2500);
    const rows = (await a.request('GET', '/api/v1/audit?queue=solo', { token: a.tokens.read })).json.items;
    assert.equal(rows.length, 1, JSON.stringify(rows));       // one change applied, by one replica
    assert.equal(rows[0].actor, 'autoscaler:solo');
    const follower = leaders[0].leader ? b : a;
    assert.equal((await item('solo', follower)).last_decision.outcome, 'unchanged');
    // The leader stops: the other takes over and goes on with its history.
    const leader = follower === a ? b : a;
    const startedAt = Date.now();
    await leader.stop();
    const took = await waitFor(async () => {
      const l = (await follower.request('GET', '/api/v1/autoscalers', { token: follower.tokens.read })).json;
      return l.leader && Date.parse(l.items[0].last_decision.at) > startedAt && l.items[0];
    }, 10000);
    assert.ok(took, 'no take-over');
    assert.deepEqual(took.decisions.map((d) => d.outcome), ['unchanged', 'applied']);
  } finally {
    try { await b?.cleanup(); } finally { try { await a?.cleanup(); } finally { await r2.cleanup(); } }
  }
});
