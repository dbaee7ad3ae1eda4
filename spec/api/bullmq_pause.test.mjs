// bullmq_pause.test.mjs — a paused Sluice queue pauses a real BullMQ Worker
// (current 6.x and last 5.x) through sluice-bullmq: the running jobs finish
// before the pause is acknowledged, the waiting ones stay waiting in BullMQ,
// and a resume lets them run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as bullmq6 from 'bullmq';
import * as bullmq5 from 'bullmq5';
import { attach } from 'sluice-bullmq';
import { startServer, putScaling, TEST_POLICY } from './harness.mjs';
import { startRedis, reports, waitFor, sleep } from './fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "pq6" { layout = "bullmq", min = 1, default = 2 }
queue "pq5" { layout = "bullmq", min = 1, default = 2 }
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

const post = (queue, verb, body) =>
  srv.request('POST', `/api/v1/scaling/${queue}/${verb}`, { token: srv.tokens.admin, json: body });

for (const [label, mq, queue] of [['bullmq 6', bullmq6, 'pq6'], ['bullmq 5', bullmq5, 'pq5']]) {
  test(`${label}: a pause waits for running jobs, keeps the rest waiting, and a resume runs them`, async () => {
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const q = new mq.Queue(queue, { connection });
    const t = { running: 0, started: 0, finished: 0 };
    const worker = new mq.Worker(queue, async () => {
      t.running++;
      t.started++;
      await sleep(800);
      t.running--;
      t.finished++;
    }, { connection, concurrency: 1 });
    const seen = await reports(redis);
    const id = `${queue}-w1`;
    const handle = attach(worker, { queue, redis: redis.url, id, heartbeatMs: 200, pollMs: 500 });
    const waiting = async () => (await q.getJobCounts('waiting')).waiting;
    try {
      await handle.ready;
      assert.ok(await waitFor(() => seen.latest[id], 3000), 'no heartbeat from the worker');
      assert.equal((await putScaling(srv, queue, { desired_concurrency: 2, reason: 'two', wait_ms: 3000 })).json.acks.complete, true);
      await q.addBulk(Array.from({ length: 8 }, (_, i) => ({ name: 'j', data: { i } })));
      assert.ok(await waitFor(() => t.running === 2, 5000), `running ${t.running}`);

      const p = await post(queue, 'pause', { reason: 'hold', wait_ms: 5000 });
      assert.equal(p.status, 200, p.text);
      assert.deepEqual(p.json.acks, { expected: 1, acknowledged: 1, complete: true });
      assert.equal(t.running, 0, 'the pause was acknowledged before its running jobs finished');
      assert.equal(t.finished, 2);
      assert.equal(handle.paused, true);
      assert.equal(worker.isPaused(), true);
      assert.equal(handle.concurrency, 2, 'what it returns to');
      assert.equal(seen.latest[id].paused, true);
      assert.equal(seen.latest[id].version, p.json.version);
      assert.equal(seen.latest[id].concurrency, 2);
      await sleep(1000);
      assert.equal(t.started, 2, 'a paused worker took a job');
      assert.equal(await waiting(), 6, 'jobs stay waiting in BullMQ');

      const r = await post(queue, 'resume', { reason: 'go', wait_ms: 5000 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.acks.complete, true);
      assert.equal(handle.paused, false);
      assert.equal(seen.latest[id].paused, false);
      assert.ok(await waitFor(() => t.finished === 8, 10000), `finished ${t.finished} of 8`);
      assert.equal(await waiting(), 0);
    } finally {
      await handle.close();
      await worker.close();
      await q.close();
    }
  });
}
