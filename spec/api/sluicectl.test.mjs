// sluicectl.test.mjs — the CI client against a real sluiced and workers:
// every documented exit code, tables for people, --json for machines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startServer, BUILD } from './harness.mjs';
import { startRedis, startWorker, reports, waitFor, freePort } from './fleet_harness.mjs';

const CTL = join(BUILD, 'sluicectl');
let redis, srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ extraArgs: ['--redis', redis.url] });
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

function ctl(args, { token = srv.tokens.readwrite, url = `http://127.0.0.1:${srv.port}` } = {}) {
  return new Promise((resolveP) => {
    execFile(CTL, args, { env: { ...process.env, SLUICE_URL: url, SLUICE_TOKEN: token }, timeout: 60000 },
      (err, stdout, stderr) => resolveP({ code: err ? err.code : 0, stdout, stderr }));
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
  assert.match(longWait.stderr, /at most 30 s/);
  const badVersion = await ctl(['set', 'beta', '5', '--reason', 'x', '--expected-version', 'abc']);
  assert.equal(badVersion.code, 1);
  assert.match(badVersion.stderr, /--expected-version: expected a version number/);
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
