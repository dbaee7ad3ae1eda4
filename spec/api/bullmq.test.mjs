// bullmq.test.mjs — real BullMQ workers (current 6.x and last 5.x from npm)
// follow Sluice through sluice-bullmq, with a real sluiced and Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as bullmq6 from 'bullmq';
import * as bullmq5 from 'bullmq5';
import { attach } from 'sluice-bullmq';
import { startServer, putScaling, TEST_POLICY } from './harness.mjs';
import { startRedis, reports, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "bq6" { layout = "bullmq", min = 0, max = 16 }
queue "bq5" { layout = "bullmq", min = 0, max = 16 }
`;

let redis;
let srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url] });
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

// A processor that records how many jobs run at once and every job id it ran.
function tracker() {
  const t = { running: 0, peak: 0, runs: new Map(), recentPeak: 0 };
  t.processor = async (job) => {
    t.running++;
    t.peak = Math.max(t.peak, t.running);
    t.recentPeak = Math.max(t.recentPeak, t.running);
    t.runs.set(job.id, (t.runs.get(job.id) || 0) + 1);
    await sleep(60);
    t.running--;
    if (job.data.fail) throw new Error('planned failure');
  };
  return t;
}

for (const [label, mq, queue] of [['bullmq 6', bullmq6, 'bq6'], ['bullmq 5', bullmq5, 'bq5']]) {
  test(`${label}: a worker follows changes with no job lost or run twice`, async () => {
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const q = new mq.Queue(queue, { connection });
    const t = tracker();
    const seen = await reports(redis);
    const jobs = 400;
    await q.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'j', data: { i, fail: i % 10 === 0 } })));
    const worker = new mq.Worker(queue, t.processor, { connection, concurrency: 1 });
    const handle = attach(worker, { queue, redis: redis.url, id: `${queue}-w1`, heartbeatMs: 200, pollMs: 500 });
    try {
      assert.ok(await waitFor(() => seen.latest[`${queue}-w1`], 3000), 'no heartbeat from the worker');
      // the acknowledgement reaches the fleet: wait_ms sees it
      let r = await putScaling(srv, queue, { desired_concurrency: 8, reason: 'grow', wait_ms: 3000 });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.acks, { expected: 1, acknowledged: 1, complete: true });
      assert.equal(worker.concurrency, 8);
      t.recentPeak = 0;
      assert.ok(await waitFor(() => t.recentPeak === 8, 3000), `peak ${t.recentPeak}, expected 8`);
      r = await putScaling(srv, queue, { desired_concurrency: 2, reason: 'shrink', wait_ms: 3000 });
      assert.equal(r.json.acks.complete, true);
      await sleep(200);                      // running jobs drain down to the new limit
      t.recentPeak = 0;
      await sleep(600);
      assert.ok(t.recentPeak <= 2 && t.recentPeak > 0, `after shrinking, peak ${t.recentPeak}`);
      // a value BullMQ would reject is never passed to it: 0 pauses
      r = await putScaling(srv, queue, { desired_concurrency: 0, reason: 'stop', wait_ms: 3000 });
      assert.equal(r.status, 200, r.text);
      assert.equal(handle.concurrency, 0);
      assert.ok(worker.concurrency >= 1);
      await sleep(300);
      const frozen = [...t.runs.values()].length;
      await sleep(500);
      assert.equal([...t.runs.values()].length, frozen, 'a paused worker took jobs');
      r = await putScaling(srv, queue, { desired_concurrency: 8, reason: 'resume', wait_ms: 3000 });
      assert.equal(worker.concurrency, 8);
      assert.ok(await waitFor(async () => {
        const c = await q.getJobCounts('waiting', 'active', 'prioritized', 'delayed');
        return Object.values(c).every((n) => n === 0);
      }, 20000), 'queue did not drain');
      await sleep(300);
      assert.equal(t.runs.size, jobs, 'a job was lost');
      assert.ok([...t.runs.values()].every((n) => n === 1), 'a job ran twice');
      const last = seen.latest[`${queue}-w1`];
      assert.equal(last.completed + last.failed, jobs);
      assert.equal(last.failed, jobs / 10);
      assert.equal(last.agent, 'sluice-bullmq/0.2');
      // the snapshot shows the BullMQ depth and the worker's rates
      const snap = (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
      const qs = snap.queues.find((x) => x.queue === queue);
      assert.equal(qs.layout, 'bullmq');
      const counts = await q.getJobCounts();
      assert.ok(await waitFor(async () => {
        const s2 = (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
        return s2.queues.find((x) => x.queue === queue).depth?.completed === counts.completed;
      }, 3000), 'depth does not match BullMQ');
      assert.equal(qs.workers[0].id, `${queue}-w1`);
      assert.ok(qs.rates.completed_per_s > 0, JSON.stringify(qs.rates));
      assert.ok(qs.rates.failed_per_s > 0);
    } finally {
      await handle.close();
      await worker.close();
    }
    assert.ok(await waitFor(() => seen.all.filter((m) => m.worker === `${queue}-w1`).at(-1)?.event === 'bye', 2000));
    // a worker started after a change comes up at the desired value
    const r = await putScaling(srv, queue, { desired_concurrency: 5, reason: 'while no worker runs' });
    assert.equal(r.status, 200, r.text);
    const worker2 = new mq.Worker(queue, t.processor, { connection, concurrency: 1 });
    const handle2 = attach(worker2, { queue, redis: redis.url, id: `${queue}-w2`, heartbeatMs: 200 });
    try {
      assert.ok(await waitFor(() => worker2.concurrency === 5, 3000), `came up at ${worker2.concurrency}`);
      assert.ok(await waitFor(() => seen.latest[`${queue}-w2`]?.version === r.json.version, 3000));
    } finally {
      await handle2.close();
      await worker2.close();
      await q.obliterate({ force: true });
      await q.close();
    }
  });
}

test('a hard limit clamps the value and reports an error', async () => {
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const worker = new bullmq6.Worker('bq6', async () => {}, { connection, concurrency: 1, autorun: false });
  const seen = await reports(redis);
  const handle = attach(worker, { queue: 'bq6', redis: redis.url, id: 'bq6-capped', max: 3, heartbeatMs: 200 });
  try {
    assert.ok(await waitFor(() => seen.latest['bq6-capped'], 3000));
    const r = await putScaling(srv, 'bq6', { desired_concurrency: 9, reason: 'above the limit', wait_ms: 2000 });
    assert.equal(r.status, 200, r.text);
    assert.equal(worker.concurrency, 3);
    const err = seen.all.find((m) => m.worker === 'bq6-capped' && m.event === 'error');
    assert.match(err.error, /hard limit 3/);
    assert.equal(err.concurrency, 3);
    assert.throws(() => attach(worker, { queue: 'bad queue' }), TypeError);
  } finally {
    await handle.close();
    await worker.close();
  }
});
