// propagation.mjs — how long from PUT to the last acknowledgement.
//
// Starts a private redis-server, sluiced on a fresh SQLite file and N
// sluice-worker processes on one queue, then makes ROUNDS changes with
// wait_ms, each answered when every worker acknowledged. Prints percentiles
// of the PUT round trip (commit + relay + pub/sub + apply + ack + answer).
//
//   make bench                                  (what CI would run)
//   WORKERS=8 ROUNDS=500 node spec/bench/propagation.mjs
import { startServer, putScaling } from '../api/harness.mjs';
import { startRedis, startWorker, reports, waitFor } from '../api/fleet_harness.mjs';

const WORKERS = Number(process.env.WORKERS || 4);
const ROUNDS = Number(process.env.ROUNDS || 200);
const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 64 }
queue "bench" { }
`;

const redis = await startRedis();
const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--write-rate', '0'] });
const seen = await reports(redis);
const workers = [];
for (let i = 0; i < WORKERS; i++) workers.push(startWorker(redis, 'bench', ['--id', `bench-${i}`]));
try {
  if (!await waitFor(() => Object.keys(seen.latest).length === WORKERS, 10000)) throw new Error('workers did not report');
  const ms = [];
  let incomplete = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    const r = await putScaling(srv, 'bench', { desired_concurrency: 8 + (i % 2), reason: `bench ${i}`, wait_ms: 5000 });
    const dt = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 200) throw new Error(`PUT failed: ${r.status} ${r.text}`);
    if (!r.json.acks.complete || r.json.acks.expected !== WORKERS) incomplete++;
    ms.push(dt);
  }
  ms.sort((a, b) => a - b);
  const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))].toFixed(2);
  console.log(`propagation: PUT -> last of ${WORKERS} acks, ${ROUNDS} changes, build ${process.env.SLUICE_BUILD || 'build'}`);
  console.log(`  p50 ${pct(50)} ms   p90 ${pct(90)} ms   p99 ${pct(99)} ms   max ${ms.at(-1).toFixed(2)} ms`);
  console.log(`  incomplete waits: ${incomplete}`);
  console.log('  repeat: make bench   (or WORKERS=8 ROUNDS=500 node spec/bench/propagation.mjs)');
  if (incomplete) process.exitCode = 1;
} finally {
  await Promise.all(workers.map((w) => w.stop()));
  await srv.cleanup();
  await redis.cleanup();
}
