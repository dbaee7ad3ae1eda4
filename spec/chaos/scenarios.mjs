// scenarios.mjs — faults against real processes during a stream of changes,
// each checked against the same invariants. `make chaos` runs them long
// (spec/chaos/chaos.mjs prints the table); spec/api/chaos_short.test.mjs
// runs each briefly in `make test`.
//
// Every scenario returns
//   { name, rounds, changes, lost, gaps, outOfOrder, backwards, hashEqualsDb,
//     convergeMs: [..], notes }
// where
//   lost        acknowledged changes (200 with a version) missing from the audit log
//   gaps        missing versions in the applied audit entries of a queue (1..max)
//   outOfOrder  publications on <prefix>:scaling not in increasing version order
//   backwards   times the desired hash was seen with an older version than before
//   convergeMs  per fault: time from recovery until Redis equals the database
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, PG, BACKEND, tempDir } from '../api/harness.mjs';
import { startRedis, listen, waitFor, sleep } from '../api/fleet_harness.mjs';

export const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 64 }
queue "alpha" { }
queue "beta"  { }
`;
const QUEUES = ['alpha', 'beta'];

// A stream of changes from one client, alternating queues and values; every
// 200 answer is remembered as acknowledged.
function changeStream(pick) {
  const acked = [];
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const srv = pick();
      const queue = QUEUES[n % 2];
      n++;
      try {
        const r = await putScaling(srv, queue, { desired_concurrency: 1 + (n % 60), reason: `chaos ${n}` });
        if (r.status === 200) acked.push({ queue, version: r.json.version, to: r.json.desired_concurrency });
      } catch { await sleep(20); }       // the server is down: part of the test
    }
  })();
  return { acked, stop: async () => { stop = true; await done; }, sent: () => n };
}

// Watch the hash; count every time a queue's version went down.
function hashWatcher(redis) {
  const last = {};
  let backwards = 0;
  let stop = false;
  const c = redis.client();
  const done = (async () => {
    while (!stop) {
      try {
        const all = await c.hgetall('sluice:desired');
        for (const [q, v] of Object.entries(all)) {
          const ver = JSON.parse(v).version;
          if (q in last && ver < last[q]) backwards++;
          last[q] = ver;
        }
      } catch { /* Redis is down: part of some scenarios */ }
      await sleep(15);
    }
  })();
  return { stop: async () => { stop = true; await done; return backwards; } };
}

function countOutOfOrder(seen) {
  const last = {};
  let bad = 0;
  for (const m of seen) {
    if (m.queue in last && m.version <= last[m.queue]) bad++;
    last[m.queue] = m.version;
  }
  return bad;
}

// The audit log against what clients were told, and versions without gaps.
function checkAudit(srv, acked) {
  const rows = srv.sql("SELECT subject || ':' || version FROM scaling_audit WHERE kind = 'scaling' AND outcome = 'applied' ORDER BY id")
    .split('\n').filter(Boolean);
  const have = new Set(rows);
  const lost = acked.filter((a) => !have.has(`${a.queue}:${a.version}`)).length;
  // Versions move only on changes that change the value (a no-op keeps it).
  const moved = srv.sql("SELECT subject || ':' || version FROM scaling_audit WHERE kind = 'scaling'" +
    " AND outcome = 'applied' AND from_value <> to_value ORDER BY id").split('\n').filter(Boolean);
  let gaps = 0;
  for (const q of QUEUES) {
    const vs = moved.filter((r) => r.startsWith(`${q}:`)).map((r) => Number(r.split(':')[1])).sort((x, y) => x - y);
    for (let i = 0; i < vs.length; i++) if (vs[i] !== i + 1) { gaps++; break; }
  }
  return { lost, gaps };
}

async function hashEqualsDb(redis, srv) {
  const c = redis.client();
  for (const q of QUEUES) {
    const db = srv.sql(`SELECT COALESCE(MAX(version), 0) FROM runtime_scaling_policies WHERE queue = '${q}'`);
    const h = await c.hget('sluice:desired', q);
    if (!h || JSON.parse(h).version !== Number(db)) return false;
  }
  return true;
}

async function converge(redis, srv, ms = 15000) {
  const t = Date.now();
  const ok = await waitFor(() => hashEqualsDb(redis, srv), ms, 25);
  return ok ? Date.now() - t : Infinity;
}

async function finish(name, { redis, srv, stream, watcher, seen, rounds, convergeMs, notes = '' }) {
  await stream.stop();
  const backwards = await watcher.stop();
  const final = await converge(redis, srv);
  const { lost, gaps } = checkAudit(srv, stream.acked);
  return {
    name, rounds, changes: stream.acked.length, lost, gaps, outOfOrder: countOutOfOrder(seen), backwards,
    hashEqualsDb: final !== Infinity, convergeMs, notes,
  };
}

async function restartKilled(srv) {
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv.proc = null;
  await srv.start();
}

// kill -9 of sluiced, again and again, while changes stream in.
export async function killLoop({ rounds = 5, every = 300 } = {}) {
  const redis = await startRedis();
  const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--write-rate', '0'] });
  const seen = await listen(redis, 'sluice:scaling');
  const watcher = hashWatcher(redis);
  const stream = changeStream(() => srv);
  const convergeMs = [];
  try {
    for (let i = 0; i < rounds; i++) {
      await sleep(every);
      await restartKilled(srv);
      convergeMs.push(await converge(redis, srv));
    }
    return await finish('kill -9 sluiced', { redis, srv, stream, watcher, seen, rounds, convergeMs });
  } finally {
    await stream.stop();
    await srv.cleanup();
    await redis.cleanup();
  }
}

// Redis killed and restarted empty, with and without changes in flight.
export async function redisRestart({ rounds = 3, down = 300 } = {}) {
  const redis = await startRedis();
  const srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--write-rate', '0'] });
  const seen = await listen(redis, 'sluice:scaling');
  const watcher = hashWatcher(redis);
  let streaming = true;
  const stream = changeStream(() => srv);
  const convergeMs = [];
  try {
    for (let i = 0; i < rounds; i++) {
      if (i === Math.floor(rounds / 2) && streaming) { await stream.stop(); streaming = false; }   // idle too
      await sleep(400);
      await redis.stop();
      await sleep(down);
      await redis.start();
      convergeMs.push(await converge(redis, srv));
    }
    return await finish('redis restarted empty', { redis, srv, stream, watcher, seen, rounds, convergeMs,
      notes: 'half the rounds with no change in flight' });
  } finally {
    await stream.stop();
    await srv.cleanup();
    await redis.cleanup();
  }
}

// Two replicas on one PostgreSQL database with a stream of changes spread
// over both, and everything the invariants need; stop() tears it down.
async function twoReplicas(lease) {
  const redis = await startRedis();
  const args = ['--redis', redis.url, '--leader-lease-ms', String(lease), '--write-rate', '0'];
  const a = await startServer({ policies: POLICY, extraArgs: args });
  const b = await startServer({ shareWith: a, policies: POLICY, extraArgs: args });
  const seen = await listen(redis, 'sluice:scaling');
  const watcher = hashWatcher(redis);
  let turn = 0;
  const stream = changeStream(() => (turn++ % 2 ? b : a));
  return {
    redis, a, b, seen, watcher, stream,
    async stop() {
      for (const s of [a, b]) s.proc?.kill('SIGCONT');
      await stream.stop();
      await b.cleanup().catch(() => {});
      await a.cleanup();
      await redis.cleanup();
    },
  };
}

async function leaderOf(a, b, ms) {
  let who = null;
  await waitFor(async () => {
    const [sa, sb] = await Promise.all([a, b].map(async (s) =>
      (await s.request('GET', '/admin/runtime-scaling', { token: s.tokens.read })).json?.leader));
    who = sa && !sb ? a : sb && !sa ? b : null;
    return who;
  }, ms, 50);
  return who;
}

// PostgreSQL: the leader frozen with SIGSTOP past its lease, then resumed.
export async function leaderFreeze({ rounds = 2, lease = 2000 } = {}) {
  if (BACKEND !== 'postgres') return null;
  const rig = await twoReplicas(lease);
  const { redis, a, b } = rig;
  const convergeMs = [];
  const takeover = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const leader = await leaderOf(a, b, lease * 3);
      if (!leader) throw new Error('no single leader');
      const other = leader === a ? b : a;
      leader.proc.kill('SIGSTOP');
      const t = Date.now();
      await waitFor(async () => (await other.request('GET', '/admin/runtime-scaling', { token: other.tokens.read })).json?.leader,
        lease * 4, 50);
      takeover.push(Date.now() - t);
      convergeMs.push(await converge(redis, a));       // a holds the database handle
      leader.proc.kill('SIGCONT');
      await sleep(lease);
    }
    const r = await finish('leader frozen (SIGSTOP)', { ...rig, srv: a, rounds, convergeMs,
      notes: `take-over ms: ${takeover.join(', ')}` });
    r.takeoverMs = takeover;
    return r;
  } finally {
    await rig.stop();
  }
}

// PostgreSQL: the leader's election session terminated by the database.
export async function sessionTerminate({ rounds = 5, lease = 2000 } = {}) {
  if (BACKEND !== 'postgres') return null;
  const rig = await twoReplicas(lease);
  const { redis, a } = rig;
  const convergeMs = [];
  const db = new URL(a.dbUrl);
  try {
    for (let i = 0; i < rounds; i++) {
      await sleep(250);
      execFileSync('psql', [db.toString(), '-At', '-c',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluiced-leader'" +
        ' AND datname = current_database() AND pid <> pg_backend_pid()'], { encoding: 'utf8' });
      convergeMs.push(await converge(redis, a));
    }
    return await finish('leader session terminated', { ...rig, srv: a, rounds, convergeMs });
  } finally {
    await rig.stop();
  }
}

// SQLite on a 2 MiB tmpfs filled up during a change stream, then freed:
// refusals are 507, nothing acknowledged is lost, service comes back by
// itself. Root only (it mounts the tmpfs); null elsewhere.
export async function fullVolume({ rounds = 2 } = {}) {
  if (BACKEND !== 'sqlite' || process.getuid?.() !== 0) return null;
  const dir = tempDir('sluice-chaos-vol-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
  const redis = await startRedis();
  const srv = await startServer({ policies: POLICY, db: join(dir, 'sluice.db'), extraArgs: ['--redis', redis.url, '--write-rate', '0'] });
  const seen = await listen(redis, 'sluice:scaling');
  const watcher = hashWatcher(redis);
  const stream = changeStream(() => srv);
  const convergeMs = [];
  let full = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      await sleep(500);
      const filler = join(dir, 'filler');
      const fd = openSync(filler, 'w');
      try { for (;;) writeSync(fd, Buffer.alloc(4096, 0x5a)); } catch (e) { if (e.code !== 'ENOSPC') throw e; } finally { closeSync(fd); }
      for (let k = 0; k < 200 && full === i; k++) {
        const r = await putScaling(srv, 'alpha', { desired_concurrency: 3, reason: 'while full' });
        if (r.status === 507) full++;
        else await sleep(10);
      }
      await sleep(500);
      unlinkSync(filler);
      convergeMs.push(await converge(redis, srv));
    }
    return await finish('full volume (tmpfs)', { redis, srv, stream, watcher, seen, rounds, convergeMs,
      notes: `507 store_full seen in ${full} of ${rounds} rounds` });
  } finally {
    await stream.stop();
    await srv.cleanup();
    await redis.cleanup();
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export const SCENARIOS = { killLoop, redisRestart, leaderFreeze, sessionTerminate, fullVolume };
export { PG };
