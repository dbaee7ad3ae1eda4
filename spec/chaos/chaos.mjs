// chaos.mjs — `make chaos`: the long versions of the fault scenarios, with a
// summary table. PostgreSQL scenarios run when SLUICE_TEST_PG is set (the
// Makefile target starts a private server); the full-volume scenario needs
// root (a tmpfs). Exits 1 when any invariant broke.
//   SLUICE_CHAOS_SCALE=N multiplies the rounds (default 1).
import { SCENARIOS } from './scenarios.mjs';

const scale = Number(process.env.SLUICE_CHAOS_SCALE || 1);
const n = (x) => Math.max(1, Math.round(x * scale));
const plan = [
  ['killLoop', { rounds: n(50), every: 200 }],
  ['redisRestart', { rounds: n(10), down: 500 }],
  ['leaderFreeze', { rounds: n(5), lease: 4000 }],
  ['sessionTerminate', { rounds: n(10), lease: 4000 }],
  ['fullVolume', { rounds: n(3) }],
];

const pct = (xs, p) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))] : NaN;
};

const rows = [];
let bad = 0;
for (const [key, opts] of plan) {
  const fn = SCENARIOS[key];
  if (!fn) continue;
  process.stderr.write(`chaos: ${key} ${JSON.stringify(opts)} ...\n`);
  const t = Date.now();
  let r;
  try {
    r = await fn(opts);
  } catch (e) {
    r = { name: key, error: e.message };
  }
  if (r === null) { rows.push({ name: key, skipped: true }); continue; }
  r.seconds = ((Date.now() - t) / 1000).toFixed(0);
  const broken = r.error || r.lost || r.gaps || r.outOfOrder || r.backwards || !r.hashEqualsDb ||
    (r.convergeMs || []).some((x) => !Number.isFinite(x));
  if (broken) bad++;
  rows.push(r);
}

const line = (cols) => cols.map((c, i) => String(c).padEnd([26, 7, 8, 5, 5, 10, 10, 8, 10, 10, 6][i] || 8)).join(' ');
console.log(line(['scenario', 'rounds', 'changes', 'lost', 'gaps', 'reordered', 'backwards', 'hash=db',
  'conv p50', 'conv max', 'secs']));
for (const r of rows) {
  if (r.skipped) { console.log(line([r.name, 'skipped (PostgreSQL or root only)'])); continue; }
  if (r.error) { console.log(line([r.name, `ERROR: ${r.error}`])); continue; }
  const c = r.convergeMs || [];
  console.log(line([r.name, r.rounds, r.changes, r.lost, r.gaps, r.outOfOrder, r.backwards, r.hashEqualsDb ? 'yes' : 'NO',
    `${pct(c, 50)} ms`, `${Math.max(...c)} ms`, r.seconds]));
  if (r.notes) console.log(`  ${r.notes}`);
}
console.log(bad ? `chaos: ${bad} scenario(s) broke an invariant` : 'chaos: every invariant held');
process.exit(bad ? 1 : 0);
