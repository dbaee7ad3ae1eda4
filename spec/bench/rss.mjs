// rss.mjs — sluiced's resident memory with QUEUES declared queues and
// WORKERS workers reporting (issue 16: at most 64 MiB at 100 and 10,000).
//
// Starts a private redis-server and sluiced on a fresh SQLite file, then
// publishes on <prefix>:reports, every second for SECONDS seconds, one
// heartbeat per worker (the report a libsluice worker sends), while reading
// the snapshot, the scaling list and /metrics once a second as a UI and a
// scraper would. Prints VmRSS (now) and VmHWM (peak) from
// /proc/<pid>/status, and fails when VmHWM exceeds LIMIT_MIB.
//
//   make bench
//   WORKERS=10000 QUEUES=100 SECONDS=10 node spec/bench/rss.mjs
import { readFileSync } from 'node:fs';
import { startServer } from '../api/harness.mjs';
import { startRedis, sleep } from '../api/fleet_harness.mjs';

const WORKERS = Number(process.env.WORKERS || 10000);
const QUEUES = Number(process.env.QUEUES || 100);
const SECONDS = Number(process.env.SECONDS || 10);
const LIMIT_MIB = Number(process.env.LIMIT_MIB || 64);
const READS = process.env.READS !== '0';       // READS=0: reports only, no readers

const queue = (i) => `queue-${String(i % QUEUES).padStart(3, '0')}`;
let policy = 'defaults { default = 4, min = 1, max = 64, max_step = 64 }\n';
for (let i = 0; i < QUEUES; i++) policy += `queue "${queue(i)}" { }\n`;

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number((text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm')) || [])[1] || 0);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

const redis = await startRedis();
const srv = await startServer({ policies: policy, extraArgs: ['--redis', redis.url, '--write-rate', '0'] });
const pub = redis.client();
try {
  const idle = status(srv.proc.pid);
  for (let s = 0; s < SECONDS; s++) {
    const started = Date.now();
    const batch = pub.pipeline();
    for (let i = 0; i < WORKERS; i++) {
      batch.publish('sluice:reports', JSON.stringify({
        event: 'heartbeat', worker: `rss-host-${String(i % 97).padStart(3, '0')}-worker-${String(i).padStart(5, '0')}`,
        queue: queue(i), concurrency: 4, version: 0, active: i % 5, completed: 1000 * s + i, failed: s,
        pid: 4000 + i, host: `pod-${String(i).padStart(5, '0')}`, agent: 'libsluice/0.2.0',
        ts: Date.now(), interval_ms: 1000, error: null,
      }));
    }
    await batch.exec();
    for (const path of READS ? ['/admin/runtime-scaling', '/api/v1/scaling', '/metrics'] : []) {
      const r = await srv.request('GET', path, { token: srv.tokens.admin });
      if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    }
    await sleep(Math.max(0, 1000 - (Date.now() - started)));
  }
  const before = status(srv.proc.pid);
  const snap = await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.admin });
  const seen = (snap.json.queues || []).reduce((n, q) => n + (q.workers ? q.workers.length : 0), 0);
  const { rss, hwm } = status(srv.proc.pid);
  console.log(`rss: sluiced with ${QUEUES} queues and ${WORKERS} workers reporting every second for ${SECONDS} s`);
  console.log(`  workers in the snapshot: ${seen}   (VmRSS before that snapshot: ${before.rss.toFixed(1)} MiB)`);
  console.log(`  VmRSS ${rss.toFixed(1)} MiB   VmHWM (peak) ${hwm.toFixed(1)} MiB   idle before the fleet: ${idle.rss.toFixed(1)} MiB   goal <= ${LIMIT_MIB} MiB`);
  console.log(`  repeat: make bench   (or WORKERS=${WORKERS} QUEUES=${QUEUES} SECONDS=${SECONDS} node spec/bench/rss.mjs)`);
  if (seen !== WORKERS || hwm > LIMIT_MIB) process.exitCode = 1;
} finally {
  await srv.cleanup();
  await redis.cleanup();
}
