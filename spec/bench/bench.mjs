// bench.mjs — `make bench`: every performance figure of issue 16 in one run,
// ending with one table (figure, value, goal, MET/MISSED, command to repeat).
//
// Everything runs on 127.0.0.1: a private redis-server, one sluiced per part
// on a fresh SQLite file, and the C programs of spec/bench/ built into
// $SLUICE_BUILD/bench/ (bare, fleet_sim, writes, and ingest when its source
// is there). Each part is described in spec/bench/README.md.
//
//   make bench                               all of it (about 2-3 minutes)
//   make bench ONLY=reads:/metrics           one figure (or a group: reads,
//                                            propagation, ingest, rss, writes,
//                                            autoscale)
//   SLUICE_BUILD=build node spec/bench/bench.mjs propagation:1000
//
// Exit status: 0 when every part ran (goals MET or MISSED alike), 1 when the
// harness itself failed (a server did not start, a program failed). With
// BENCH_STRICT=1 a MISSED goal exits 3. No timing is ever asserted in
// `make test`; this is where figures live.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, openSync, closeSync, readFileSync, readdirSync,
  existsSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import http from 'node:http';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BUILD = resolve(process.env.SLUICE_BUILD || join(ROOT, 'build'));
const BIN = join(BUILD, 'bench');
const SLUICED = join(BUILD, 'sluiced');
const THREADS = Number(process.env.BENCH_THREADS || Math.min(64, availableParallelism()));
const WRK_SECONDS = Number(process.env.BENCH_SECONDS || 5);
const WRK_ARGS = ['-t2', '-c32', `-d${WRK_SECONDS}s`];
const STRICT = process.env.BENCH_STRICT === '1';
// Servers stop by themselves even if this script dies: timeout(1) ends them.
const LIFETIME = ['--kill-after=5', '900'];
// BENCH_BARE=close-each: the yardstick closes every connection, as the one
// issue 16's first figures were taken against (see spec/bench/README.md).
const BARE_CLOSE = process.env.BENCH_BARE === 'close-each';
const ONLY = process.argv.slice(2).flatMap((a) => a.split(/[\s,]+/)).filter(Boolean);

// Goals of issue 16 (spec/bench/README.md says where each comes from).
const GOAL = {
  read: { '/admin/runtime-scaling': 0.5, '/api/v1/scaling': 0.5, '/metrics': 0.3 },
  propagation: 1.5,          // engine / floor, at p50 and at p99
  ingestPerCore: 100000,     // reports/s on one core
  rssMiB: 64,                // at 100 queues and 10,000 workers
  writeP50: 1.10,            // 50 streams / 0 streams: "no measurable growth"
  writeP99: 1.25,
};
const READ_ROUTES = ['/admin/runtime-scaling', '/api/v1/scaling', '/api/v1/scaling/q7', '/metrics',
  '/api/v1/whoami', '/healthz'];
const PROPAGATION = [{ workers: 100, rounds: 300 }, { workers: 1000, rounds: 100 }];
const BLAST = { workers: 10000, queues: 100, reports: 100000 };
const WRITE_ROUNDS = 3000;
const WRITE_STREAMS = 50;
// autoscale (issue 19): a burst of JOBS jobs of SLEEP_MS each into a queue
// of WORKERS real sluice-worker processes at FIXED per worker, once as it
// is and once with a backlog-target rule (PER_SLOT jobs per slot) that may
// go up to MAX, evaluated every EVERY_S. "Under target": waiting + active
// at most PER_SLOT per slot of the fixed capacity.
const AUTOSCALE = { workers: 2, fixed: 4, max: 32, maxStep: 16, perSlot: 10, everyS: 2, windowS: 4, jobs: 600,
  sleepMs: 200, rounds: Number(process.env.BENCH_AUTOSCALE_ROUNDS || 3) };

const WORKER = join(BUILD, 'sluice-worker');
const rows = [];           // the summary table
const cleanups = [];       // processes and directories, newest first
let harnessFailed = false;

// A figure runs when named, when its group is named, or (for a group) when one of its figures is.
const wanted = (id) => ONLY.length === 0 ||
  ONLY.some((o) => id === o || id.startsWith(`${o}:`) || o.startsWith(`${id}:`));
const repeat = (id) => `make bench ONLY=${id}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n, digits = 0) => Number(n).toLocaleString('en-US', { maximumFractionDigits: digits,
  minimumFractionDigits: digits });
const say = (line) => process.stdout.write(`${line}\n`);
// A ratio is judged as shown (two decimals), so "1.50x" never reads MISSED against 1.5x.
const shown = (ratio) => Number(ratio.toFixed(2));

function row(figure, value, goal, met, id) {
  rows.push({ figure, value, goal, result: met === null ? 'info' : met ? 'MET' : 'MISSED', repeat: repeat(id) });
}

function errorRow(figure, id, err) {
  harnessFailed = true;
  say(`  ERROR ${figure}: ${err.message}`);
  rows.push({ figure, value: `error: ${err.message.split('\n')[0].slice(0, 60)}`, goal: '', result: 'ERROR',
    repeat: repeat(id) });
}

// ---- processes ------------------------------------------------------------------

function freePort() {
  return new Promise((resolveP, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolveP(port));
    });
  });
}

// Run a program to its end; resolves with its stdout, rejects with its
// stderr when it fails or outlives limitMs.
function run(cmd, args, limitMs = 120000) {
  return new Promise((resolveP, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), limitMs);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolveP(out);
      else reject(new Error(`${cmd.split('/').pop()} exited ${code ?? signal}: ${err.trim() || out.trim()}`));
    });
  });
}

// The last JSON line a bench program printed.
function lastJson(out) {
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no result line in: ${out.slice(0, 200)}`);
  return JSON.parse(line);
}

// A long-running program; resolves once `ready` matches a stdout line.
function startDaemon(cmd, args, ready, limitMs = 20000) {
  return new Promise((resolveP, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const stop = () => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); };
    cleanups.unshift(stop);
    const timer = setTimeout(() => { stop(); reject(new Error(`${cmd} not ready in ${limitMs} ms: ${err}`)); },
      limitMs);
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.split('\n').find((l) => ready.test(l));
      if (m) { clearTimeout(timer); resolveP({ proc: p, line: m, stop }); }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited ${code}: ${err.trim()}`)); });
  });
}

function get(port, path, token) {
  return new Promise((resolveP, reject) => {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolveP({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: GET ${path}`)));
  });
}

async function startRedis() {
  const port = await freePort();
  // Subscribers are never cut off for a full output buffer: the ingest
  // blast deliberately sends faster than sluiced reads.
  const p = spawn('timeout', [...LIFETIME, 'redis-server', '--bind', '127.0.0.1', '--port', String(port), '--save', '',
    '--appendonly', 'no', '--maxclients', '10000', '--client-output-buffer-limit', 'pubsub 0 0 0'],
  { stdio: 'ignore' });
  cleanups.unshift(() => p.kill('SIGTERM'));
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
      s.on('data', (d) => { s.destroy(); r(String(d).startsWith('+PONG')); });
      s.on('error', () => r(false));
    });
    if (ok) return { port, url: `redis://127.0.0.1:${port}` };
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

// sluiced on a fresh SQLite file with the given policy, its own Redis
// prefix, no write rate limit and warn-level logs (an access log line per
// request would time the log, not the route). Returns port, pid, tokens.
async function startSluiced(redis, prefix, policy, extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  cleanups.unshift(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'bench.lua'), policy);
  const db = `sqlite:${join(dir, 'sluice.db')}`;
  const token = (name, scopes) => execFileSync(SLUICED, ['token', 'create', '--db', db, '--name', name,
    '--scopes', scopes], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const tokens = { admin: token('bench-admin', 'admin'), read: token('bench-reader', 'scaling:read') };
  const port = await freePort();
  const log = openSync(join(dir, 'sluiced.log'), 'w');
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--db', db, '--env', 'local', '--policies',
    join(dir, 'policies'), '--scripts', join(ROOT, 'scripts'), '--ui', join(ROOT, 'ui'), '--threads',
    String(THREADS), '--redis', redis.url, '--prefix', prefix, '--write-rate', '0', '--log-level', 'warn',
    ...extra];
  const proc = spawn('timeout', [...LIFETIME, SLUICED, ...args], { stdio: ['ignore', 'ignore', log] });
  closeSync(log);
  const exited = new Promise((r) => proc.on('exit', r));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  cleanups.unshift(stop);
  for (let i = 0; i < 150; i++) {
    const r = await get(port, '/readyz').catch(() => null);
    if (r && r.status === 200) {
      // timeout(1) is the parent; /proc figures are of sluiced, its child.
      const pid = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim());
      return { port, pid, tokens, stop, dir, args };
    }
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`sluiced did not become ready:\n${readFileSync(join(dir, 'sluiced.log'), 'utf8').slice(-2000)}`);
}

const queuesPolicy = (names) => `defaults { default = 4, min = 1, max = 64, max_step = 64, cooldown_s = 0 }\n${
  names.map((q) => `queue "${q}" { }`).join('\n')}\n`;
const range = (n, name) => Array.from({ length: n }, (_, i) => `${name}${i}`);

// ---- /proc -----------------------------------------------------------------------

// Nanoseconds on CPU per thread of pid (schedstat: exact, unlike ticks).
function threadCpu(pid) {
  const cpu = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try { cpu.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])); } catch {
      /* the thread ended between the listing and the read */
    }
  }
  return cpu;
}

function status(pid, field) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// ---- reads: each route against a bare server with the same body size ---------------

async function wrk(port, path, token) {
  const args = [...WRK_ARGS, ...(token ? ['-H', `Authorization: Bearer ${token}`] : []),
    `http://127.0.0.1:${port}${path}`];
  const out = await run('wrk', args, (WRK_SECONDS + 30) * 1000);
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/);
  const bad = out.match(/Non-2xx or 3xx responses:\s+(\d+)/);
  if (!rps) throw new Error(`wrk printed no rate: ${out.slice(0, 300)}`);
  if (bad) throw new Error(`${bad[1]} answers were not 2xx/3xx`);
  return Number(rps[1]);
}

async function benchReads(redis, srv) {
  const routes = READ_ROUTES.filter((r) => wanted(`reads:${r}`));
  if (!routes.length) return;
  say(`\nreads: wrk ${WRK_ARGS.join(' ')}, sluiced (20 queues, 60 workers, --threads ${THREADS}) against bare` +
      `${BARE_CLOSE ? ' closing each connection' : ''}`);
  // The bare server answers each route with a body of the size sluiced just gave.
  const sizes = [];
  for (const path of routes) {
    const token = path === '/healthz' || path === '/metrics' ? null : srv.tokens.read;
    const r = await get(srv.port, path, token);
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}`);
    sizes.push({ path, token, bytes: r.body.length, type: r.headers['content-type'] || 'application/json' });
  }
  const bare = await startDaemon(join(BIN, 'bare'), [...(BARE_CLOSE ? ['--close-each'] : []),
    '--threads', String(THREADS), '--seconds',
    String(routes.length * (2 * WRK_SECONDS + 10) + 30),
    ...sizes.flatMap((s) => ['--route', `${s.path}=${s.bytes}=${s.type}`])], /"port"/);
  const barePort = JSON.parse(bare.line).port;
  for (const s of sizes) {
    const id = `reads:${s.path}`;
    try {
      const engine = await wrk(srv.port, s.path, s.token);
      const floor = await wrk(barePort, s.path, null);
      const ratio = engine / floor;
      const goal = GOAL.read[s.path];
      say(`  ${s.path.padEnd(24)} ${fmt(s.bytes).padStart(7)} B   sluiced ${fmt(engine).padStart(7)} req/s   ` +
          `bare ${fmt(floor).padStart(7)} req/s   ${ratio.toFixed(2)}x`);
      row(`read ${s.path} (${fmt(s.bytes)} B)`, `${fmt(engine)} / ${fmt(floor)} req/s = ${ratio.toFixed(2)}x`,
        goal ? `>= ${goal}x bare` : '(no goal)', goal ? shown(ratio) >= goal : null, id);
    } catch (e) { errorRow(`read ${s.path}`, id, e); }
  }
  bare.stop();
}

// ---- writes: PUT latency with 0 and with 50 open event streams ---------------------

async function benchWrites(srv) {
  if (!wanted('writes')) return;
  say(`\nwrites: PUTs (no wait_ms) on q0, ${WRITE_ROUNDS} without and ${WRITE_ROUNDS} with ${WRITE_STREAMS} open ` +
      'event streams, in alternating blocks; then the same with no streams in either half (the noise)');
  try {
    const writes = async (streams) => lastJson(await run(join(BIN, 'writes'), ['--http-port', String(srv.port),
      '--write-token', srv.tokens.admin, '--read-token', srv.tokens.read, '--queue', 'q0', '--streams',
      String(streams), '--rounds', String(WRITE_ROUNDS), '--blocks', '10', '--seconds', '200']));
    const r = await writes(WRITE_STREAMS), aa = await writes(0);
    for (const [p, goal] of [['p50', GOAL.writeP50], ['p99', GOAL.writeP99]]) {
      const a = r.without[`${p}_ms`], b = r.with[`${p}_ms`], ratio = b / a;
      const noise = aa.with[`${p}_ms`] / aa.without[`${p}_ms`];
      // "No measurable growth": within the goal, or no further apart than
      // two alike halves of the same run (the spread of the measure itself).
      const spread = Math.max(noise, 1 / noise);
      say(`  ${p}: ${a.toFixed(2)} ms with 0 streams, ${b.toFixed(2)} ms with ${WRITE_STREAMS}: ${ratio.toFixed(2)}x ` +
          `(two halves without streams: ${noise.toFixed(2)}x)`);
      row(`write ${p}, ${WRITE_STREAMS} streams vs 0`,
        `${b.toFixed(2)} / ${a.toFixed(2)} ms = ${ratio.toFixed(2)}x (noise ${noise.toFixed(2)}x)`,
        `<= ${goal}x or <= noise`, shown(ratio) <= Math.max(goal, shown(spread)), 'writes');
    }
  } catch (e) { errorRow('write latency with streams', 'writes', e); }
}

// ---- propagation: PUT -> every ack, against the floor of the same fleet -------------

async function benchPropagation(redis) {
  const sizes = PROPAGATION.filter((p) => wanted(`propagation:${p.workers}`));
  if (!sizes.length) return;
  const srv = await startSluiced(redis, 'bench-prop', queuesPolicy(sizes.map((p) => `prop${p.workers}`)));
  try {
    for (const { workers, rounds } of sizes) {
      const id = `propagation:${workers}`, queue = `prop${workers}`;
      say(`\npropagation: ${workers} simulated workers, ${rounds} changes each way`);
      try {
        const common = ['--redis-port', String(redis.port), '--workers', String(workers), '--queue', queue,
          '--seconds', '120'];
        const floor = lastJson(await run(join(BIN, 'fleet_sim'), [...common, '--prefix', 'bench-floor',
          '--floor', String(rounds)], 150000));
        const engine = lastJson(await run(join(BIN, 'fleet_sim'), [...common, '--prefix', 'bench-prop',
          '--engine', String(rounds), '--http-port', String(srv.port), '--token', srv.tokens.admin], 150000));
        if (engine.incomplete) throw new Error(`${engine.incomplete} PUTs answered before every worker acknowledged`);
        for (const p of ['p50', 'p99']) {
          const e = engine[`${p}_ms`], f = floor[`${p}_ms`], ratio = e / f;
          say(`  ${p}: PUT -> ${workers} acks ${e.toFixed(2)} ms, floor ${f.toFixed(2)} ms: ${ratio.toFixed(2)}x`);
          row(`propagation ${p}, ${fmt(workers)} workers`, `${e.toFixed(2)} / ${f.toFixed(2)} ms = ${ratio.toFixed(2)}x`,
            `<= ${GOAL.propagation}x floor`, shown(ratio) <= GOAL.propagation, id);
        }
      } catch (e) { errorRow(`propagation, ${workers} workers`, id, e); }
    }
  } finally { await srv.stop(); }
}

// ---- ingest and resident memory: 10,000 workers' heartbeats over 100 queues ---------

// Wait until the busiest thread since `before` has stopped (under 2 ms of CPU
// in 200 ms): the report backlog in Redis is drained. Returns the time it
// last moved, and the CPU then.
async function drained(pid, before, limitMs = 60000) {
  const t0 = performance.now();
  let last = threadCpu(pid), lastMoved = performance.now(), quietSince = performance.now();
  while (performance.now() - t0 < limitMs) {
    await sleep(50);
    const cur = threadCpu(pid);
    let busiest = null;
    for (const [tid, ns] of cur) if (!busiest || ns - (before.get(tid) || 0) > busiest.d) busiest = { tid, d: ns - (before.get(tid) || 0) };
    const moved = (cur.get(busiest.tid) || 0) - (last.get(busiest.tid) || 0);
    if (moved > 1e6) { lastMoved = performance.now(); quietSince = performance.now(); }
    last = cur;
    if (performance.now() - quietSince >= 200) return { at: lastMoved, cpu: cur, busiest: busiest.tid };
  }
  throw new Error(`sluiced was still busy after ${limitMs / 1000} s`);
}

async function benchIngestAndRss(redis) {
  const doIngest = wanted('ingest'), doRss = wanted('rss');
  if (!doIngest && !doRss) return;
  const queues = range(BLAST.queues, 'q');
  const srv = await startSluiced(redis, 'bench-ingest', queuesPolicy(queues));
  try {
    say(`\ningest: ${fmt(BLAST.reports)} heartbeats of ${fmt(BLAST.workers)} workers over ${BLAST.queues} queues, ` +
        'published as fast as Redis takes them');
    await sleep(300);
    const before = threadCpu(srv.pid);
    const t0 = performance.now();
    const blast = lastJson(await run(join(BIN, 'fleet_sim'), ['--redis-port', String(redis.port), '--prefix',
      'bench-ingest', '--queue', 'q', '--queues', String(BLAST.queues), '--workers', String(BLAST.workers),
      '--blast', String(BLAST.reports), '--pubs', '4']));
    const end = await drained(srv.pid, before);
    const seconds = (end.at - t0) / 1000;
    let total = 0;
    for (const [tid, ns] of end.cpu) total += ns - (before.get(tid) || 0);
    const thread = end.cpu.get(end.busiest) - (before.get(end.busiest) || 0);
    const usThread = thread / 1000 / BLAST.reports, usProc = total / 1000 / BLAST.reports;
    const perCore = 1e6 / usThread;
    say(`  published in ${blast.seconds.toFixed(2)} s; sluiced drained them in ${seconds.toFixed(2)} s ` +
        `(${fmt(BLAST.reports / seconds)} reports/s wall)`);
    say(`  CPU per report: ${usThread.toFixed(2)} us on the ingest thread, ${usProc.toFixed(2)} us in the whole process`);
    if (doIngest) {
      row('ingest, end to end (ingest thread)', `${usThread.toFixed(2)} us/report = ${fmt(perCore)}/s per core`,
        `>= ${fmt(GOAL.ingestPerCore)}/s`, perCore >= GOAL.ingestPerCore, 'ingest');
      row('ingest, end to end (whole process)', `${usProc.toFixed(2)} us/report; ${fmt(BLAST.reports / seconds)}/s wall`,
        '(no goal)', null, 'ingest');
    }
    if (doRss) {
      await sleep(1500);            // a telemetry tick over the whole fleet
      const m = await get(srv.port, '/metrics');
      let workers = 0;
      for (const l of m.body.toString().split('\n')) {
        const w = l.match(/^sluice_workers\{queue="[^"]*"\} (\d+)/);
        if (w) workers += Number(w[1]);
      }
      const rss = status(srv.pid, 'VmRSS') / 1024, hwm = status(srv.pid, 'VmHWM') / 1024;
      say(`  resident memory: VmRSS ${rss.toFixed(1)} MiB (peak ${hwm.toFixed(1)} MiB), ${fmt(workers)} workers known`);
      const all = workers === BLAST.workers;
      row(`RSS, ${BLAST.queues} queues, ${fmt(BLAST.workers)} workers`,
        `${rss.toFixed(1)} MiB, peak ${hwm.toFixed(1)}${all ? '' : ` (only ${fmt(workers)} workers kept)`}`,
        `<= ${GOAL.rssMiB} MiB, all kept`, all && rss <= GOAL.rssMiB, 'rss');
    }
  } catch (e) { errorRow('ingest and resident memory', doIngest ? 'ingest' : 'rss', e); } finally { await srv.stop(); }
  // The other helpers' programs run on a quiet machine: this sluiced is gone.
  if (doIngest) await benchIngestProgram();
  if (doRss) await benchRssProgram();
}

// spec/bench/ingest.c (report parsing and ingest in-process, no Redis), when
// it exists. Its lines "  LABEL  N reports/s wall ... M ns/report cpu" each
// become a row judged on CPU (10^9 / M per core); the first line
// ("register") is first contact, not heartbeat ingest, and is shown only.
// A program printing a JSON line with reports_per_s instead is read too.
async function benchIngestProgram() {
  const exe = join(BIN, 'ingest');
  const goal = `>= ${fmt(GOAL.ingestPerCore)}/s`;
  if (!existsSync(join(ROOT, 'spec/bench/ingest.c')) || !existsSync(exe)) {
    say('  ingest.c: not measured: spec/bench/ingest.c missing');
    rows.push({ figure: 'ingest, in-process (ingest.c)', value: 'not measured: spec/bench/ingest.c missing',
      goal, result: 'MISSED', repeat: repeat('ingest') });
    return;
  }
  try {
    const out = await run(exe, [], 120000);
    say(out.trimEnd().split('\n').map((l) => `  ingest.c: ${l}`).join('\n'));
    const lines = [...out.matchAll(/^\s*(\S.*?)\s+([\d.]+) reports\/s wall.*?([\d.]+) ns\/report cpu/gm)];
    lines.forEach(([, label, wall, ns], i) => {
      const perCore = 1e9 / Number(ns), judged = i > 0 || lines.length === 1;
      row(`ingest.c: ${label}`, `${fmt(perCore)}/s per core (${fmt(Number(wall))}/s wall)`,
        judged ? goal : '(no goal)', judged ? perCore >= GOAL.ingestPerCore : null, 'ingest');
    });
    if (lines.length) return;
    const rate = Number(lastJson(out).reports_per_s);
    if (!(rate > 0)) throw new Error('printed no reports/s figure');
    row('ingest, in-process (ingest.c)', `${fmt(rate)} reports/s`, goal, rate >= GOAL.ingestPerCore, 'ingest');
  } catch (e) { errorRow('ingest, in-process (ingest.c)', 'ingest', e); }
}

// spec/bench/rss.mjs (resident memory with readers polling, its own
// sluiced), when it exists. It exits 1 when its goal is missed, so its exit
// status is not a harness error here; its "VmRSS A MiB  VmHWM (peak) B MiB"
// line and "workers in the snapshot: N" are.
async function benchRssProgram() {
  const script = join(ROOT, 'spec/bench/rss.mjs');
  if (!existsSync(script)) return;
  try {
    const out = await new Promise((resolveP, reject) => {
      const p = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SLUICE_BUILD: BUILD } });
      let text = '';
      p.stdout.on('data', (d) => { text += d; });
      p.stderr.on('data', (d) => { text += d; });
      const timer = setTimeout(() => p.kill('SIGKILL'), 180000);
      p.on('error', reject);
      p.on('exit', () => { clearTimeout(timer); resolveP(text); });
    });
    say(out.trimEnd().split('\n').map((l) => `  rss.mjs: ${l}`).join('\n'));
    const m = out.match(/VmRSS ([\d.]+) MiB\s+VmHWM \(peak\) ([\d.]+) MiB/);
    const seen = out.match(/workers in the snapshot: (\d+)/);
    if (!m) throw new Error('printed no "VmRSS .. MiB  VmHWM (peak) .. MiB" line');
    const peak = Number(m[2]), all = !seen || Number(seen[1]) === BLAST.workers;
    row('RSS peak (rss.mjs, readers polling)', `${Number(m[1]).toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB` +
      `${seen ? `, ${fmt(Number(seen[1]))} workers seen` : ''}`, `<= ${GOAL.rssMiB} MiB peak`,
    all && peak <= GOAL.rssMiB, 'rss');
  } catch (e) { errorRow('RSS (rss.mjs)', 'rss', e); }
}

// ---- autoscale: a burst absorbed by a rule, against the same burst at a fixed concurrency ----

// One Redis command over a connection of its own (RESP); resolves with the reply's first line.
function redisCmd(port, ...args) {
  return new Promise((resolveP, reject) => {
    const s = net.connect(port, '127.0.0.1', () =>
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`));
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      const end = buf.indexOf('\r\n');
      if (end < 0) return;
      s.destroy();
      if (buf[0] === '-') reject(new Error(`redis: ${buf.slice(1, end)}`)); else resolveP(buf.slice(1, end));
    });
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('redis: timeout')));
  });
}

const backlog = async (redis, prefix, queue) =>
  Number(await redisCmd(redis.port, 'LLEN', `${prefix}:q:${queue}:wait`)) +
  Number(await redisCmd(redis.port, 'LLEN', `${prefix}:q:${queue}:active`));

async function getJson(port, path, token) {
  const r = await get(port, path, token);
  if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
  return JSON.parse(r.body.toString());
}

// Poll until fn() is truthy (every 50 ms); throws what after limitMs.
async function until(fn, limitMs, what) {
  const t0 = performance.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() - t0 > limitMs) throw new Error(`${what} within ${limitMs / 1000} s`);
    await sleep(50);
  }
}

// The queue at rest: empty, desired back at the fixed value, every worker running it.
async function atRest(srv, redis, prefix, queue) {
  const A = AUTOSCALE;
  await until(async () => {
    if (await backlog(redis, prefix, queue)) return false;
    const q = (await getJson(srv.port, '/admin/runtime-scaling', srv.tokens.read)).queues.find((x) => x.queue === queue);
    return q && q.desired_concurrency === A.fixed && q.worker_count === A.workers &&
      q.active_concurrency === A.fixed * A.workers;
  }, 60000, `${queue} did not come back to rest (empty, ${A.fixed} x ${A.workers} workers)`);
}

// One burst: produce the jobs, then watch the backlog (from Redis, every
// 50 ms) and, with a rule, desired. Times are from the start of the producer.
async function burst(srv, redis, prefix, queue, withRule) {
  const A = AUTOSCALE;
  const target = A.perSlot * A.fixed * A.workers;
  const t0 = Date.now();
  const producing = run(WORKER, ['--produce', String(A.jobs), '--queue', queue, '--redis', redis.url, '--prefix', prefix,
    '--sleep-ms', String(A.sleepMs)], 30000);
  const out = { underMs: null, emptyMs: null, reactionMs: null, first: null, peak: A.fixed };
  let produced = false, failed = null;
  producing.then(() => { produced = true; }, (e) => { failed = e; });
  await until(async () => {
    if (failed) throw failed;
    const n = await backlog(redis, prefix, queue);
    const now = Date.now();
    if (!produced) return false;
    if (out.underMs === null && n <= target) out.underMs = now - t0;
    if (n === 0) { out.emptyMs = now - t0; return true; }
    return false;
  }, 120000, `${queue}: the burst was not worked off`);
  await producing;
  if (withRule) {
    // The first applied scale-up, as the audit log has it (source autoscaler).
    const h = await getJson(srv.port, `/api/v1/scaling/${queue}/history?limit=50`, srv.tokens.read);
    const ups = h.items.filter((e) => e.source === 'autoscaler' && e.outcome === 'applied' && e.to > e.from &&
      Date.parse(e.at) >= t0).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    if (!ups.length) throw new Error(`${queue}: no applied scale-up by the autoscaler in the audit log`);
    out.first = ups[0];
    out.reactionMs = Date.parse(ups[0].at) - t0;
    out.peak = Math.max(out.peak, ...ups.map((e) => e.to));
  }
  return out;
}

// The whole run for one queue: its workers, ROUNDS bursts, each from rest.
async function bursts(srv, redis, prefix, queue, withRule) {
  const A = AUTOSCALE;
  const ws = [];
  try {
    for (let i = 0; i < A.workers; i++) {
      ws.push(startWorkerProc(['--queue', queue, '--redis', redis.url, '--prefix', prefix, '--id', `${queue}-${i}`,
        '--heartbeat-ms', '500']));
    }
    const results = [];
    for (let r = 0; r < A.rounds; r++) {
      await atRest(srv, redis, prefix, queue);
      const b = await burst(srv, redis, prefix, queue, withRule);
      say(`  ${withRule ? 'rule ' : 'fixed'} burst ${r + 1}: ${withRule ? `first scale-up ${b.first.from} -> ` +
        `${b.first.to} after ${(b.reactionMs / 1000).toFixed(2)} s, peak ${b.peak}; ` : ''}` +
        `under target after ${(b.underMs / 1000).toFixed(2)} s, empty after ${(b.emptyMs / 1000).toFixed(2)} s`);
      results.push(b);
    }
    return results;
  } finally {
    for (const w of ws) w.stop();
  }
}

// A real sluice-worker (it prints nothing to wait for: the snapshot says when it is there).
function startWorkerProc(args) {
  const p = spawn('timeout', [...LIFETIME, WORKER, ...args], { stdio: 'ignore' });
  const stop = () => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); };
  cleanups.unshift(stop);
  return { proc: p, stop };
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]; };

async function benchAutoscale(redis) {
  if (!wanted('autoscale')) return;
  const A = AUTOSCALE;
  const target = A.perSlot * A.fixed * A.workers;
  const goalS = A.everyS + 1;
  const bounds = `min = ${A.fixed}, default = ${A.fixed}, max = ${A.max}, max_step = ${A.maxStep}, cooldown_s = 0`;
  const policy = `queue "asfixed" { ${bounds} }\nqueue "asauto" { ${bounds} }\n` +
`autoscale "asauto" {
  every_s = ${A.everyS}, scale_down_window_s = ${A.windowS}, hold_after_manual_s = 0,
  rule = function(q, ctx)
    -- about ${A.perSlot} jobs waiting or running per slot of the live workers
    local backlog = q.waiting + q.active
    local want = math.ceil(backlog / (${A.perSlot} * math.max(q.workers, 1)))
    want = math.max(q.min, math.min(q.max, want))
    return want, ("%d waiting+active, %d workers, ${A.perSlot} per slot -> %d"):format(backlog, q.workers, want)
  end,
}
`;
  say(`\nautoscale: bursts of ${A.jobs} jobs of ${A.sleepMs} ms into ${A.workers} sluice-worker processes at ` +
      `${A.fixed} each, ${A.rounds} times at that fixed concurrency and ${A.rounds} times with a backlog rule ` +
      `(every_s ${A.everyS}, max ${A.max}, max_step ${A.maxStep}); target: backlog <= ${target}`);
  // A server before issue 19 refuses the policy: say so, and skip.
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-as-'));
  cleanups.unshift(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bench.lua'), policy);
  try { await run(SLUICED, ['policy', 'check', dir], 30000); } catch (e) {
    if (!/autoscale/.test(e.message)) { errorRow('autoscale', 'autoscale', e); return; }
    say(`  skipped: this sluiced does not know \`autoscale\` (issue 19): ${e.message.split('\n')[0]}`);
    rows.push({ figure: 'autoscale reaction and drain', value: 'skipped: this sluiced does not know `autoscale`',
      goal: `<= ${goalS} s`, result: 'skipped', repeat: repeat('autoscale') });
    return;
  }
  const prefix = 'bench-as';
  const srv = await startSluiced(redis, prefix, policy);
  try {
    const fixed = await bursts(srv, redis, prefix, 'asfixed', false);
    const auto = await bursts(srv, redis, prefix, 'asauto', true);
    const s = (ms) => (ms / 1000).toFixed(2);
    const reaction = auto.map((b) => b.reactionMs);
    const steps = auto.map((b) => b.first.to - b.first.from);
    say(`  reaction p50 ${s(pct(reaction, 50))} s, max ${s(pct(reaction, 100))} s (goal <= ${goalS} s); ` +
        `first steps ${steps.join(', ')} (max_step ${A.maxStep})`);
    row(`autoscale reaction, burst -> first scale-up (${A.rounds} bursts)`,
      `p50 ${s(pct(reaction, 50))} s, max ${s(pct(reaction, 100))} s`, `<= every_s + 1 = ${goalS} s`,
      shown(pct(reaction, 100) / 1000) <= goalS && steps.every((d) => d <= A.maxStep), 'autoscale');
    for (const [key, label] of [['underMs', `backlog under ${target}`], ['emptyMs', 'backlog empty']]) {
      const a = pct(auto.map((b) => b[key]), 50), f = pct(fixed.map((b) => b[key]), 50);
      const am = pct(auto.map((b) => b[key]), 100), fm = pct(fixed.map((b) => b[key]), 100);
      say(`  ${label}: rule p50 ${s(a)} s (max ${s(am)}), fixed p50 ${s(f)} s (max ${s(fm)}): ${(a / f).toFixed(2)}x`);
      row(`autoscale ${label}, rule vs fixed ${A.fixed}`, `p50 ${s(a)} / ${s(f)} s = ${(a / f).toFixed(2)}x ` +
        `(max ${s(am)} / ${s(fm)} s)`, '(no goal)', null, 'autoscale');
    }
  } catch (e) { errorRow('autoscale', 'autoscale', e); } finally { await srv.stop(); }
}

// ---- the run ------------------------------------------------------------------------

function table() {
  const head = { figure: 'figure', value: 'value', goal: 'goal', result: 'result', repeat: 'repeat with' };
  const cols = Object.keys(head);
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => String(r[c]).length))]));
  const line = (r) => cols.map((c) => String(r[c]).padEnd(width[c])).join('  ').trimEnd();
  return [line(head), cols.map((c) => '-'.repeat(width[c])).join('  '), ...rows.map(line)].join('\n');
}

async function main() {
  for (const p of ['bare', 'fleet_sim', 'writes']) {
    if (!existsSync(join(BIN, p))) throw new Error(`${join(BIN, p)} missing: run make bench (it builds them)`);
  }
  const started = performance.now();
  say(`sluice bench: ${BUILD}, ${availableParallelism()} cores, sluiced --threads ${THREADS}`);
  const redis = await startRedis();

  if (wanted('reads') || wanted('writes')) {
    const queues = range(20, 'q');
    const srv = await startSluiced(redis, 'bench-reads', queuesPolicy(queues),
      ['--max-streams', String(WRITE_STREAMS + 16), '--max-streams-per-token', String(WRITE_STREAMS + 8)]);
    try {
      // 60 workers on the 20 queues, heartbeating every second, as in the issue.
      const fleet = await startDaemon(join(BIN, 'fleet_sim'), ['--redis-port', String(redis.port), '--prefix',
        'bench-reads', '--queue', 'q', '--queues', '20', '--workers', '60', '--serve', '300'], /"ready":true/);
      await sleep(1500);           // every worker heartbeated at least once
      try { await benchReads(redis, srv); } catch (e) { errorRow('reads', 'reads', e); }
      await benchWrites(srv);
      fleet.stop();
    } finally { await srv.stop(); }
  }
  await benchPropagation(redis);
  await benchIngestAndRss(redis);
  await benchAutoscale(redis);

  say(`\nsummary (${((performance.now() - started) / 1000).toFixed(0)} s; goals of issues 16 and 19; ` +
      'each line repeats alone with the command on its right)\n');
  say(table());
  writeFileSync(join(BIN, 'summary.txt'), `${table()}\n`);
  const missed = rows.filter((r) => r.result === 'MISSED').length;
  say(`\n${rows.filter((r) => r.result === 'MET').length} met, ${missed} missed, ` +
      `${rows.filter((r) => r.result === 'ERROR').length} harness errors (table also in ${join(BIN, 'summary.txt')})`);
  if (harnessFailed) process.exitCode = 1;
  else if (STRICT && missed) process.exitCode = 3;
}

async function cleanup() {
  for (const c of cleanups.splice(0)) {
    try { await c(); } catch { /* best effort: the rest must still go */ }
  }
}

process.on('SIGINT', () => { cleanup().finally(() => process.exit(130)); });
try {
  await main();
} catch (e) {
  say(`bench: ${e.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
