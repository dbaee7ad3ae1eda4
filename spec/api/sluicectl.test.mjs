// sluicectl.test.mjs — the CI client against a real sluiced and workers:
// every documented exit code, tables for people, --json for machines, the
// help and usage errors, paging and --retry-after on a real 429.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { startServer, BUILD, ROOT, TEST_POLICY } from './harness.mjs';
import { startRedis, startWorker, reports, waitFor, freePort } from './fleet_harness.mjs';

const CTL = join(BUILD, 'sluicectl');
const VERSION = readFileSync(join(ROOT, 'Makefile'), 'utf8').match(/^VERSION\s*:?=\s*(\S+)/m)[1];

// Queues of their own for the tests below, so no test trips over another's
// cooldown or budget.
const POLICY = `${TEST_POLICY}
queue "quick"   { cooldown_s = 2 }
queue "hourly"  { changes_per_hour = 1 }
queue "big"     { default = 20 }
queue "timed"   { }
queue "paged"   { }
`;

// A stand-in server for what sluiced never does (a 429 without end, a 429
// without Retry-After) and to see the requests sluicectl sends.
const fake = { requests: [], answer: (req, res) => res.end('{}') };
const fakeServer = http.createServer((req, res) => {
  fake.requests.push({ method: req.method, url: req.url, headers: req.headers });
  res.setHeader('Content-Type', 'application/json');
  fake.answer(req, res);
});
const fakeUrl = () => `http://127.0.0.1:${fakeServer.address().port}`;

let redis, srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
  await new Promise((r) => fakeServer.listen(0, '127.0.0.1', r));
});
after(async () => {
  await new Promise((r) => fakeServer.close(r));
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

// Run sluicectl. url or token null: the variable is not set at all.
function ctl(args, { token = srv.tokens.readwrite, url = `http://127.0.0.1:${srv.port}` } = {}) {
  const env = { ...process.env, SLUICE_URL: url, SLUICE_TOKEN: token };
  if (url === null) delete env.SLUICE_URL;
  if (token === null) delete env.SLUICE_TOKEN;
  const started = Date.now();
  return new Promise((resolveP) => {
    execFile(CTL, args, { env, timeout: 60000 },
      (err, stdout, stderr) => resolveP({ code: err ? err.code : 0, stdout, stderr, ms: Date.now() - started }));
  });
}

test('set_applies_and_exits_0', async () => {
  const r = await ctl(['set', 'alpha', '6', '--reason', 'nightly batch']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^alpha: 4 -> 6 \(version 1\)$/m);
  const h = await ctl(['history', 'alpha']);
  assert.match(h.stdout, /ci-job .*alpha .*4->6 .*cli .*applied .*nightly batch/);
});

test('a_policy_refusal_exits_2_with_the_server_message_as_is', async () => {
  const r = await ctl(['set', 'alpha', '200', '--reason', 'too big']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /422 out_of_bounds: alpha: 200 is above max 32/);
  const c = await ctl(['set', 'beta', '30', '--reason', 'needs confirm']);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /(428 confirmation_required|422 step_too_large)/);
});

test('missing_permissions_exit_2', async () => {
  const r = await ctl(['set', 'alpha', '5', '--reason', 'reader tries'], { token: srv.tokens.read });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /403 forbidden: this needs the scaling:write scope/);
  const bad = await ctl(['get'], { token: 'slc_nope' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /401 unauthenticated/);
});

test('an_acknowledged_wait_exits_0', async () => {
  const seen = await reports(redis);
  const w = startWorker(redis, 'zero', ['--id', 'ctl-worker']);
  try {
    assert.ok(await waitFor(() => seen.latest['ctl-worker'], 5000));
    const r = await ctl(['set', 'zero', '5', '--reason', 'scale up for the batch', '--wait', '5s']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /acknowledged by 1 of 1 live workers$/m);
  } finally { await w.stop(); }
});

test('a_wait_that_ends_without_every_ack_exits_3', async () => {
  const c = redis.client();
  const beat = setInterval(() => c.publish('sluice:reports', JSON.stringify({ event: 'heartbeat',
    worker: 'ctl-stuck', queue: 'guarded', concurrency: 1, version: 0, interval_ms: 200 })), 100);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await ctl(['set', 'guarded', '6', '--reason', 'nobody will ack', '--wait', '700ms']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /acknowledged by 0 of 1 live workers before the wait ended/);
    assert.match(r.stderr, /not every worker acknowledged in time/);
  } finally { clearInterval(beat); }
});

test('a_wait_with_no_live_worker_exits_3_not_0', async () => {
  const r = await ctl(['set', 'budget', '5', '--reason', 'no worker runs budget', '--wait', '1s']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /acknowledged by 0 of 0 live workers/);
  assert.match(r.stderr, /no live worker of budget to acknowledge the change/);
});

test('bad_flags_are_usage_errors', async () => {
  const longWait = await ctl(['set', 'beta', '5', '--reason', 'x', '--wait', '1m']);
  assert.equal(longWait.code, 1);
  assert.match(longWait.stderr, /^sluicectl: --wait: '1m' is more than 30s, the longest the server waits$/m);
  const badVersion = await ctl(['set', 'beta', '5', '--reason', 'x', '--expected-version', 'abc']);
  assert.equal(badVersion.code, 1);
  assert.match(badVersion.stderr, /^sluicectl: --expected-version: 'abc' is not a version number$/m);
});

test('a_server_that_is_down_exits_1', async () => {
  const r = await ctl(['get'], { url: `http://127.0.0.1:${await freePort()}` });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot reach/);
  const usage = await ctl(['set', 'alpha', 'five', '--reason', 'x']);
  assert.equal(usage.code, 1);
  const noReason = await ctl(['set', 'alpha', '5']);
  assert.equal(noReason.code, 1);
  assert.match(noReason.stderr, /needs --reason/);
});

test('json_prints_the_api_reply_and_tables_read_well', async () => {
  const r = await ctl(['--json', 'get', 'alpha']);
  assert.equal(r.code, 0);
  const t = JSON.parse(r.stdout);
  assert.equal(t.queue, 'alpha');
  assert.equal(typeof t.bounds.max, 'number');
  const all = await ctl(['get']);
  assert.match(all.stdout, /^QUEUE\s+DESIRED\s+VERSION\s+BOUNDS/m);
  assert.match(all.stdout, /^alpha\s+6\s+1\s+1\.\.32/m);
  const st = await ctl(['status']);
  assert.equal(st.code, 0);
  assert.match(st.stdout, /^environment local, redis up, store up, writes on$/m);
  assert.match(st.stdout, /^QUEUE\s+WAITING\s+ACTIVE\s+DESIRED\s+RUNNING\s+WORKERS/m);
  assert.match(st.stdout, /^zero\s+/m);
  const who = await ctl(['whoami']);
  assert.match(who.stdout, /^ci-job in local \(writes on\), scopes: scaling:read scaling:write$/m);
  const refusal = await ctl(['--json', 'set', 'alpha', '999', '--reason', 'x']);
  assert.equal(refusal.code, 2);
  assert.equal(JSON.parse(refusal.stdout).error.code, 'out_of_bounds');
});

test('help_prints_the_usage_on_stdout_and_exits_0', async () => {
  for (const args of [['--help'], ['-h'], ['help'], ['set', '--help']]) {
    // No URL and no token: help must not need a server.
    const r = await ctl(args, { url: null, token: null });
    assert.equal(r.code, 0, `${args}: ${r.stderr}`);
    assert.equal(r.stderr, '', args.join(' '));
    assert.match(r.stdout, /^usage: sluicectl \[--url URL\] \[--token T\] \[--json\] \[--retry-after\] COMMAND\n/);
    assert.match(r.stdout, /--before ID/);
    assert.match(r.stdout, /^exit: 0 done, 2 refused/m);
  }
});

test('version_prints_the_build_version_and_is_the_user_agent', async () => {
  const v = await ctl(['--version'], { url: null, token: null });
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout, `sluicectl ${VERSION}\n`);
  assert.equal(v.stderr, '');
  fake.requests = [];
  fake.answer = (req, res) => res.end(JSON.stringify({ name: 'fake', environment: 'local', writes_enabled: true, scopes: [] }));
  const who = await ctl(['whoami'], { url: fakeUrl(), token: 'slc_fake' });
  assert.equal(who.code, 0, who.stderr);
  assert.equal(fake.requests.length, 1);
  assert.equal(fake.requests[0].headers['user-agent'], `sluicectl/${VERSION}`);
  assert.equal(fake.requests[0].headers.authorization, 'Bearer slc_fake');
});

test('usage_errors_name_the_bad_input_in_one_line_then_print_the_usage', async () => {
  const cases = [
    [['frob'], "sluicectl: unknown command 'frob'"],
    [['--frob', 'get'], "sluicectl: unknown option '--frob'"],
    [['set', 'alpha', 'abc', '--reason', 'x'], "sluicectl: N must be a whole number, 0 or more; got 'abc'"],
    [['set', 'alpha', '-1', '--reason', 'x'], "sluicectl: N must be a whole number, 0 or more; got '-1'"],
    [['set', 'alpha'], 'sluicectl: set needs QUEUE and N'],
    [['set', 'alpha', '5'], 'sluicectl: set needs --reason (it goes into the audit log)'],
    [['set', 'alpha', '5', '--reason', 'x', '--wait', '1m'], "sluicectl: --wait: '1m' is more than 30s, the longest the server waits"],
    [['set', 'alpha', '5', '--reason', 'x', '--wait', 'soon'], "sluicectl: --wait: 'soon' is not a duration (e.g. 500ms, 5s; at most 30s)"],
    [['set', 'alpha', '5', '--reason', 'x', '--duration', '2w'], "sluicectl: --duration: '2w' is not a duration (e.g. 90s, 15m, 2h, 1d)"],
    [['set', 'alpha', '5', '--reason', 'x', '--duration', '31d'], "sluicectl: --duration: '31d' is more than 30d, the longest override"],
    [['history', '--limit', 'x'], "sluicectl: --limit: 'x' is not a number from 1 to 500"],
    [['history', '--limit', '501'], "sluicectl: --limit: '501' is not a number from 1 to 500"],
    [['history', 'alpha', '--before', '0'], "sluicectl: --before: '0' is not an audit id (a whole number, 1 or more)"],
    [['history', '--limit'], 'sluicectl: --limit needs a value'],
    [['get', 'alpha', 'beta'], "sluicectl: get: unexpected argument 'beta'"],
    [['get', 'a/b'], "sluicectl: 'a/b' is not a queue name"],
    [[], 'sluicectl: no command given'],
  ];
  fake.requests = [];
  for (const [args, line] of cases) {
    const r = await ctl(args, { url: fakeUrl() });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '', args.join(' '));
    const [first, second] = r.stderr.split('\n');
    assert.equal(first, line, args.join(' '));
    assert.match(second, /^usage: sluicectl /, args.join(' '));
  }
  assert.equal(fake.requests.length, 0, 'a usage error must not reach the server');
});

test('no_token_is_said_plainly_before_any_request', async () => {
  fake.requests = [];
  for (const token of [null, '']) {
    for (const args of [['get'], ['whoami'], ['set', 'alpha', '5', '--reason', 'x']]) {
      const r = await ctl(args, { url: fakeUrl(), token });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'sluicectl: no token given (set SLUICE_TOKEN or --token)\n');
      assert.equal(r.stdout, '');
    }
  }
  const empty = await ctl(['--token', '', 'get'], { url: fakeUrl(), token: null });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /no token given/);
  assert.equal(fake.requests.length, 0);
  // --token alone is enough.
  const flag = await ctl(['--token', srv.tokens.read, 'whoami'], { token: null });
  assert.equal(flag.code, 0, flag.stderr);
  assert.match(flag.stdout, /^reader in local/);
});

test('confirmation_required_tells_to_re_run_with_confirm', async () => {
  const r = await ctl(['set', 'big', '26', '--reason', 'above confirm_above']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'sluicectl: 428 confirmation_required: big: 26 is above 24; re-run with --confirm to apply it\n');
  assert.doesNotMatch(r.stderr, /"confirm": true/);
  const ok = await ctl(['set', 'big', '26', '--reason', 'above confirm_above', '--confirm']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^big: 20 -> 26 \(version 1\)$/m);
});

test('set_with_duration_says_when_the_override_ends_and_what_comes_back', async () => {
  const r = await ctl(['set', 'timed', '6', '--reason', 'two hours', '--duration', '2h']);
  assert.equal(r.code, 0, r.stderr);
  const m = r.stdout.match(/^timed: 4 -> 6 \(version 1\) until (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC, then 4$/m);
  assert.ok(m, r.stdout);
  const t = JSON.parse((await ctl(['--json', 'get', 'timed'])).stdout);
  assert.equal(t.expires_at.slice(0, 19), `${m[1]}T${m[2]}`);
  assert.ok(Math.abs(Date.parse(`${m[1]}T${m[2]}Z`) - (Date.now() + 7200e3)) < 60e3);
  // Made permanent, then the same value with --duration: no override starts.
  assert.equal((await ctl(['set', 'timed', '6', '--reason', 'keep it'])).stdout, 'timed: 6 -> 6 (version 1)\n');
  const same = await ctl(['set', 'timed', '6', '--reason', 'again', '--duration', '1h']);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, 'timed: 6 -> 6 (version 1), not temporary: the value did not change\n');
});

test('history_pages_with_before_and_hints_the_next_page_on_stderr', async () => {
  for (const n of [5, 6, 7, 8, 9]) {
    const r = await ctl(['set', 'paged', String(n), '--reason', `step to ${n}`]);
    assert.equal(r.code, 0, r.stderr);
  }
  const changes = (out) => [...out.matchAll(/ paged +(\d+->\d+) /g)].map((m) => m[1]);
  const pages = [];
  let args = ['history', 'paged', '--limit', '2'];
  for (;;) {
    const r = await ctl(args);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /more:/);
    pages.push(changes(r.stdout));
    const hint = r.stderr.match(/^more: (sluicectl history paged --limit 2 --before \d+)$/m);
    if (!hint) { assert.equal(r.stderr, ''); break; }
    args = hint[1].split(' ').slice(1);      // the hint runs as printed
    assert.ok(pages.length < 5, 'paging does not end');
  }
  assert.deepEqual(pages, [['8->9', '7->8'], ['6->7', '5->6'], ['4->5']]);
  // Without a queue the same over the whole audit log; 20 is the default.
  const all = await ctl(['history', '--limit', '1']);
  const next = all.stderr.match(/^more: sluicectl history --limit 1 --before (\d+)$/m);
  assert.ok(next, all.stderr);
  const older = await ctl(['--json', 'history', '--limit', '1', '--before', next[1]]);
  assert.equal(older.code, 0, older.stderr);
  assert.ok(JSON.parse(older.stdout).items[0].id < Number(next[1]), 'before= returns only older entries');
  assert.equal(older.stderr, '', '--json leaves paging to next_before');
});

test('a_429_says_retry_after_and_retry_after_waits_once_then_applies', async () => {
  assert.equal((await ctl(['set', 'quick', '5', '--reason', 'first'])).code, 0);
  const refused = await ctl(['set', 'quick', '6', '--reason', 'too soon']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^sluicectl: 429 rate_limited: quick: changed less than 2s ago \(cooldown\); retry in [12]s$/m);
  assert.match(refused.stderr, /^sluicectl: Retry-After: [12]s; --retry-after waits that long and tries once more$/m);
  const r = await ctl(['--json', 'set', 'quick', '6', '--reason', 'after the cooldown', '--retry-after']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^sluicectl: waiting [12]s \(Retry-After\), then trying once more$/m);
  assert.ok(r.ms >= 900, `returned after ${r.ms} ms`);
  const answer = JSON.parse(r.stdout);           // only the final answer is printed
  assert.equal(answer.desired_concurrency, 6);
  assert.equal(answer.version, 2);
  const h = JSON.parse((await ctl(['--json', 'history', 'quick', '--limit', '2'])).stdout).items;
  assert.deepEqual(h.map((e) => [e.outcome, e.reason]),
    [['applied', 'after the cooldown'], ['rejected', 'after the cooldown']]);
});

test('retry_after_does_not_wait_for_a_budget_or_twice', async () => {
  assert.equal((await ctl(['set', 'hourly', '5', '--reason', 'the one change'])).code, 0);
  const r = await ctl(['set', 'hourly', '6', '--reason', 'over budget', '--retry-after']);
  assert.equal(r.code, 2);
  assert.ok(r.ms < 5000, `waited ${r.ms} ms`);
  assert.match(r.stderr, /^sluicectl: 429 rate_limited: hourly: 1 changes in the last hour reached the budget of 1; retry in \d+s$/m);
  assert.match(r.stderr, /^sluicectl: Retry-After: \d+s; more than 60s, not waiting$/m);
  // sluiced's cooldown always ends in time; a server still refusing after the
  // wait gets no second wait.
  fake.requests = [];
  fake.answer = (req, res) => {
    res.writeHead(429, { 'Retry-After': '1' });
    res.end(JSON.stringify({ error: { code: 'rate_limited', message: 'busy' } }));
  };
  const twice = await ctl(['set', 'alpha', '7', '--reason', 'x', '--retry-after'], { url: fakeUrl() });
  assert.equal(twice.code, 2);
  assert.equal(fake.requests.length, 2);
  assert.match(twice.stderr, /^sluicectl: still refused after waiting once; Retry-After: 1s$/m);
  fake.answer = (req, res) => {
    res.writeHead(429);
    res.end(JSON.stringify({ error: { code: 'rate_limited', message: 'busy' } }));
  };
  const bare = await ctl(['set', 'alpha', '7', '--reason', 'x', '--retry-after'], { url: fakeUrl() });
  assert.equal(bare.code, 2);
  assert.equal(fake.requests.length, 3);
  assert.match(bare.stderr, /^sluicectl: the answer has no Retry-After; not retrying$/m);
});
