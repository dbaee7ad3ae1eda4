// telemetry.test.mjs — queue health as operators see it: depth from both
// layouts (checked against real BullMQ), rates from real workers, live
// events, Prometheus metrics under a strict parser, and readiness.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Queue, Worker } from 'bullmq';
import { startServer, putScaling, assertError, TEST_POLICY } from './harness.mjs';
import { startRedis, startWorker, produce, reports, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "bq" { layout = "bullmq" }
alert "budget_mismatch" {
  severity = "warning", for_s = 0,
  worker = function(w, q) return q.queue == "budget" and w.concurrency ~= q.desired end,
}
`;

let redis;
let srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--max-streams', '3'] });
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

const snapshot = async () => (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
const queueOf = (snap, q) => snap.queues.find((x) => x.queue === q);

test('the_snapshot_has_the_shape_of_api_md_and_the_alias_answers_the_same', async () => {
  const snap = await snapshot();
  assert.equal(snap.environment, 'local');
  assert.equal(snap.writes_enabled, true);
  assert.match(snap.generated_at, /Z$/);
  assert.equal(snap.store, 'up');
  assert.ok(await waitFor(async () => (await snapshot()).redis === 'up', 3000));
  const alpha = queueOf(await snapshot(), 'alpha');
  for (const key of ['queue', 'layout', 'depth', 'desired_concurrency', 'version', 'active_concurrency',
    'worker_count', 'workers', 'rates', 'pending_updates', 'alerts']) assert.ok(key in alpha, key);
  for (const key of ['completed_per_s', 'failed_per_s', 'success_ratio', 'window_s']) assert.ok(key in alpha.rates, key);
  const alias = await srv.request('GET', '/admin/event-health', { token: srv.tokens.read });
  assert.equal(alias.status, 200);
  assert.deepEqual(alias.json.queues.map((q) => q.queue), (await snapshot()).queues.map((q) => q.queue));
  assertError(await srv.request('GET', '/admin/runtime-scaling'), 401, 'unauthenticated');
});

test('sluice_layout_depth_equals_llen', async () => {
  const c = redis.client();
  await c.lpush('sluice:q:alpha:wait', ...Array.from({ length: 7 }, (_, i) => `{"id":"w${i}"}`));
  await c.lpush('sluice:q:alpha:active', '{"id":"a1"}', '{"id":"a2"}');
  await c.lpush('sluice:q:alpha:failed', '{"id":"f1"}');
  const want = { waiting: await c.llen('sluice:q:alpha:wait'), active: await c.llen('sluice:q:alpha:active'),
    failed: await c.llen('sluice:q:alpha:failed'), delayed: 0 };
  const depth = await waitFor(async () => {
    const d = queueOf(await snapshot(), 'alpha').depth;
    return d && d.waiting === want.waiting ? d : null;
  }, 3000);
  assert.deepEqual(depth, want);
  await c.del('sluice:q:alpha:wait', 'sluice:q:alpha:active', 'sluice:q:alpha:failed');
});

test('bullmq_layout_depth_equals_getJobCounts_and_sluiced_never_writes_bullmq_keys', async () => {
  const connection = { host: '127.0.0.1', port: redis.port };
  const q = new Queue('bq', { connection });
  const c = redis.client();
  // Every BullMQ key, serialised: sluiced's reads must leave them byte-equal.
  const dumpAll = async () => {
    const keys = (await c.keys('bull:bq:*')).sort();
    return Promise.all(keys.map(async (k) => [k, (await c.dumpBuffer(k))?.toString('base64')]));
  };
  try {
    // completed and failed jobs through a real BullMQ worker
    for (let i = 0; i < 6; i++) await q.add('job', { n: i });
    const done = new Promise((res) => { let n = 0; const w = new Worker('bq', async (job) => {
      if (job.data.n % 3 === 0) throw new Error('planned failure');
    }, { connection, concurrency: 2 }); const tick = () => { if (++n === 6) res(w); };
    w.on('completed', tick); w.on('failed', tick); });
    const w = await done;
    await w.close();
    // then waiting, delayed and prioritized ones nobody runs
    for (let i = 0; i < 4; i++) await q.add('waiting', { i });
    await q.add('later', {}, { delay: 600000 });
    await q.add('later2', {}, { delay: 600000 });
    await q.add('urgent', {}, { priority: 3 });
    const counts = await q.getJobCounts();
    const depth = await waitFor(async () => {
      const d = queueOf(await snapshot(), 'bq').depth;
      return d && d.waiting === counts.waiting && d.delayed === counts.delayed ? d : null;
    }, 3000);
    assert.ok(depth, 'depth never matched');
    for (const [state, n] of Object.entries(counts)) assert.equal(depth[state], n, `${state}: ${depth[state]} != ${n}`);
    assert.equal(counts.failed, 2);
    assert.equal(counts.completed, 4);
    assert.equal(queueOf(await snapshot(), 'bq').layout, 'bullmq');
    const before = await dumpAll();
    await sleep(2200);                     // two refreshes with only sluiced reading
    assert.deepEqual(await dumpAll(), before, 'a BullMQ key changed while only sluiced read it');
  } finally {
    await q.obliterate({ force: true });
    await q.close();
  }
});

test('rates_from_real_workers_match_the_failure_ratio', async () => {
  const seen = await reports(redis);
  await produce(redis, 'guarded', 100, ['--sleep-ms', '10', '--fail-ratio', '0.2']);
  const w = startWorker(redis, 'guarded', ['--id', 'rater', '--concurrency', '4']);
  try {
    const c = redis.client();
    assert.ok(await waitFor(async () => (await c.llen('sluice:q:guarded:wait')) === 0 && (await c.llen('sluice:q:guarded:active')) === 0, 10000));
    assert.ok(await waitFor(() => seen.latest.rater && seen.latest.rater.completed + seen.latest.rater.failed === 100, 3000));
    await sleep(300);
    const q = queueOf(await snapshot(), 'guarded');
    assert.equal(q.rates.completed_total, 80);
    assert.equal(q.rates.failed_total, 20);
    assert.ok(q.rates.completed_per_s > 0 && q.rates.failed_per_s > 0);
    assert.ok(Math.abs(q.rates.success_ratio - 0.8) < 1e-9, `success_ratio ${q.rates.success_ratio}`);
    assert.ok(q.rates.window_s > 0 && q.rates.window_s <= 60);
    assert.equal(q.worker_count, 1);
    assert.equal(q.workers[0].id, 'rater');
    assert.equal(q.workers[0].state, 'ok');
  } finally { await w.stop(); }
});

test('a_worker_whose_counters_reset_never_makes_a_negative_rate', async () => {
  const c = redis.client();
  const beat = (completed) => c.publish('sluice:reports', JSON.stringify({ event: 'heartbeat', worker: 'resetter',
    queue: 'beta', concurrency: 1, version: 0, completed, failed: 0, interval_ms: 200 }));
  await beat(1000);
  await sleep(250);
  await beat(1010);
  await sleep(250);
  await beat(3);                           // restarted under the same id
  await sleep(100);
  const q = queueOf(await snapshot(), 'beta');
  assert.ok(q.rates.completed_per_s >= 0, `${q.rates.completed_per_s}`);
  assert.ok(q.rates.completed_per_s < 100, `spike: ${q.rates.completed_per_s}`);
  assert.equal(q.rates.completed_total, 1013);
});

test('worker_rows_carry_host_pid_age_rates_and_last_error', async () => {
  const c = redis.client();
  const beat = (completed, extra = {}) => c.publish('sluice:reports', JSON.stringify({ event: 'heartbeat',
    worker: 'detailed', queue: 'zero', concurrency: 2, version: 0, completed, failed: 1, interval_ms: 200,
    host: 'build-7', pid: 4242, ...extra }));
  await beat(10);
  await sleep(300);
  await beat(40);
  await sleep(300);
  await c.publish('sluice:reports', JSON.stringify({ event: 'error', worker: 'detailed', queue: 'zero',
    concurrency: 2, version: 0, error: 'clamped to the hard limit 2' }));
  const row = await waitFor(async () => {
    const w = queueOf(await snapshot(), 'zero').workers.find((x) => x.id === 'detailed');
    return w && w.last_error ? w : null;
  }, 3000);
  assert.ok(row, 'the row shows');
  assert.equal(row.host, 'build-7');
  assert.equal(row.pid, 4242);
  // Its first report came about 600 ms before the last; how late each was
  // read depends on the machine's load, so only the order is exact.
  assert.ok(row.first_seen_ms >= 200 && row.first_seen_ms < 60000, `${row.first_seen_ms}`);
  assert.ok(row.first_seen_ms > row.last_seen_ms, `${row.first_seen_ms} > ${row.last_seen_ms}`);
  assert.ok(row.completed_per_s > 0, `${row.completed_per_s}`);
  assert.equal(row.failed_per_s, 0);
  assert.equal(row.last_error, row.error);
  await beat(41, { worker: 'anonymous', host: undefined, pid: undefined });
  const anon = await waitFor(async () => queueOf(await snapshot(), 'zero').workers.find((x) => x.id === 'anonymous'), 3000);
  assert.equal(anon.host, null);
  assert.equal(anon.pid, null);
});

function openEvents(headers = {}) {
  return new Promise((resolveP, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/admin/runtime-scaling/events',
      headers: { Authorization: `Bearer ${srv.tokens.read}`, ...headers }, agent: false }, (res) => {
      const stream = { res, req, events: [], raw: '' };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        stream.raw += d;
        let i;
        while ((i = stream.raw.indexOf('\n\n')) >= 0) {
          const block = stream.raw.slice(0, i);
          stream.raw = stream.raw.slice(i + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          stream.events.push({ type: type || 'comment', data: data ? JSON.parse(data) : block, at: Date.now() });
        }
      });
      resolveP(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

const metric = async (name) => {
  const text = (await srv.request('GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').at(-1)) : undefined;
};

test('an_sse_client_gets_a_snapshot_at_once_and_a_change_within_a_second', async () => {
  const s = await openEvents();
  try {
    assert.equal(s.res.statusCode, 200);
    assert.match(s.res.headers['content-type'], /^text\/event-stream/);
    assert.ok(await waitFor(() => s.events.length > 0, 2000));
    assert.equal(s.events[0].type, 'snapshot');
    assert.ok(Array.isArray(s.events[0].data.queues));
    const t0 = Date.now();
    const r = await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'watch me' });
    assert.equal(r.status, 200, r.text);
    const change = await waitFor(() => s.events.find((e) => e.type === 'change' && e.data.queue === 'zero'), 1000, 10);
    assert.ok(change, 'no change event within a second');
    assert.ok(change.at - t0 < 1000);
    assert.equal(change.data.to, 3);
    assert.equal(change.data.reason, 'watch me');
    // snapshots keep coming at least every 2 s
    const n = s.events.filter((e) => e.type === 'snapshot').length;
    assert.ok(await waitFor(() => s.events.filter((e) => e.type === 'snapshot').length > n, 2600));
  } finally { s.req.destroy(); }
});

test('an_sse_client_gets_alert_events_as_they_fire_and_resolve', async () => {
  const s = await openEvents();
  const c = redis.client();
  const beat = (concurrency) => c.publish('sluice:reports', JSON.stringify({ event: 'heartbeat',
    worker: 'budget-odd', queue: 'budget', concurrency, version: 0, interval_ms: 200 }));
  try {
    const desired = queueOf(await snapshot(), 'budget').desired_concurrency;
    const timer = setInterval(() => beat(desired + 1), 100);
    const fired = await waitFor(() => s.events.find((e) => e.type === 'alert' && e.data.alert === 'budget_mismatch' && e.data.state === 'firing'), 4000);
    clearInterval(timer);
    assert.ok(fired, 'no alert event');
    assert.equal(fired.data.worker, 'budget-odd');
    const timer2 = setInterval(() => beat(desired), 100);
    const resolved = await waitFor(() => s.events.find((e) => e.type === 'alert' && e.data.state === 'resolved'), 4000);
    clearInterval(timer2);
    assert.ok(resolved, 'no resolved event');
  } finally { s.req.destroy(); }
});

test('event_streams_are_capped_authenticated_and_released_when_the_client_goes', async () => {
  // A closed peer is noticed when a write fails: within two snapshots.
  assert.ok(await waitFor(async () => (await metric('sluice_event_streams')) === 0, 10000), 'earlier stream not released');
  const open = [await openEvents(), await openEvents(), await openEvents()];
  try {
    assert.ok(await waitFor(async () => (await metric('sluice_event_streams')) === 3, 2000));
    const fourth = await srv.request('GET', '/admin/runtime-scaling/events', { token: srv.tokens.read });
    assertError(fourth, 503, 'too_many_streams');
    assertError(await srv.request('GET', '/admin/runtime-scaling/events'), 401, 'unauthenticated');
    // idle streams hold no HTTP thread: ordinary requests still answer at once
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await srv.request('GET', '/healthz')).status, 200);
    assert.ok(Date.now() - t0 < 1000);
  } finally { for (const s of open) s.req.destroy(); }
  assert.ok(await waitFor(async () => (await metric('sluice_event_streams')) === 0, 10000), 'streams not released');
});

// A strict reader of the Prometheus text format (0.0.4): every sample
// belongs to a family declared by HELP and TYPE before it, names and labels
// are well formed, escapes are the three allowed, no series repeats, and
// histogram buckets are cumulative up to +Inf == _count.
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'must end with a newline');
  const families = new Map();
  const seen = new Set();
  const samples = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name, help] = /^# HELP (\S+) (.*)$/.exec(line) || [];
      assert.ok(name && NAME.test(name) && help, `bad HELP: ${line}`);
      assert.ok(!families.has(name) || !families.get(name).help, `HELP twice: ${name}`);
      families.set(name, { ...(families.get(name) || {}), help });
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) || [];
      assert.ok(name, `bad TYPE: ${line}`);
      assert.ok(!families.get(name)?.type, `TYPE twice: ${name}`);
      families.set(name, { ...(families.get(name) || {}), type });
      continue;
    }
    assert.ok(!line.startsWith('#') && line.length > 0, `unexpected line: ${JSON.stringify(line)}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `bad sample: ${line}`);
    const [, name, , labelText = '', value] = m;
    assert.ok(/^([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[+-]Inf|NaN)$/.test(value), `bad value: ${line}`);
    const labels = {};
    let rest = labelText;
    while (rest.length) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      assert.ok(lm, `bad labels: ${line}`);
      assert.ok(!(lm[1] in labels), `label twice: ${line}`);
      labels[lm[1]] = lm[2];
      rest = rest.slice(lm[0].length);
    }
    const family = [...families.keys()].find((f) => name === f ||
      (families.get(f).type === 'histogram' && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)));
    assert.ok(family && families.get(family).type && families.get(family).help, `sample before its HELP/TYPE: ${line}`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    assert.ok(!seen.has(key), `series twice: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: Number(value), family });
  }
  return { families, samples };
}

test('metrics_follow_the_text_format_and_the_contract_names', async () => {
  await srv.request('GET', '/api/v1/scaling', { token: srv.tokens.read });
  await putScaling(srv, 'alpha', { desired_concurrency: 999, reason: 'refused for metrics' });
  const r = await srv.request('GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const { families, samples } = parseExposition(r.text);
  for (const name of ['sluice_desired_concurrency', 'sluice_actual_concurrency', 'sluice_workers',
    'sluice_queue_depth', 'sluice_jobs_completed_total', 'sluice_jobs_failed_total', 'sluice_pending_updates',
    'sluice_alert_firing', 'sluice_scaling_changes_total', 'sluice_http_requests_total',
    'sluice_http_request_duration_seconds', 'sluice_redis_up', 'sluice_store_up']) assert.ok(families.has(name), name);
  assert.equal(families.get('sluice_http_request_duration_seconds').type, 'histogram');
  const buckets = samples.filter((s) => s.name === 'sluice_http_request_duration_seconds_bucket');
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, 'buckets not cumulative');
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  assert.equal(buckets.at(-1).value, samples.find((s) => s.name === 'sluice_http_request_duration_seconds_count').value);
  const refused = samples.find((s) => s.name === 'sluice_scaling_changes_total' && s.labels.queue === 'alpha' && s.labels.outcome === 'rejected');
  assert.ok(refused && refused.value >= 1);
  const desired = samples.find((s) => s.name === 'sluice_desired_concurrency' && s.labels.queue === 'zero');
  assert.equal(desired.value, queueOf(await snapshot(), 'zero').desired_concurrency);
  const req = samples.find((s) => s.name === 'sluice_http_requests_total' && s.labels.route === '/api/v1/scaling' && s.labels.status === '200');
  assert.ok(req && req.value >= 1);
  assert.equal(samples.find((s) => s.name === 'sluice_store_up').value, 1);
});

test('readyz_and_the_snapshot_tell_when_redis_is_stopped', async () => {
  assert.equal((await srv.request('GET', '/readyz')).status, 200);
  await redis.stop();
  try {
    const r = await waitFor(async () => {
      const x = await srv.request('GET', '/readyz');
      return x.status === 503 ? x : null;
    }, 4000);
    assert.ok(r, '/readyz stayed ready');
    assertError(r, 503, 'not_ready');
    assert.deepEqual(r.json.error.details, { store: 'up', redis: 'down' });
    const snap = await snapshot();
    assert.equal(snap.redis, 'down');
    assert.equal(snap.store, 'up');
    assert.equal(queueOf(snap, 'alpha').depth, null);
    assert.equal(queueOf(snap, 'alpha').desired_concurrency, (await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read })).json.desired_concurrency);
    const { samples } = parseExposition((await srv.request('GET', '/metrics')).text);
    assert.equal(samples.find((s) => s.name === 'sluice_redis_up').value, 0);
  } finally {
    await redis.start();
  }
  assert.ok(await waitFor(async () => (await srv.request('GET', '/readyz')).status === 200, 8000), 'not ready again');
});
