// bullmq_install.test.mjs — the install of docs/bullmq.md works as written.
// For each BullMQ version the suite runs (spec/package-lock.json: current
// 6.x, last 5.x), a fresh project outside the repository runs the documented
// commands (`npm pack` of agents/bullmq, then `npm install
// bullmq@<version> <tarball>`), then a worker like the doc's example: a
// BullMQ Worker with sluice-bullmq attached, against a private redis-server.
// The worker must follow the desired state in Redis (an ack with the new
// concurrency on <prefix>:reports) and process a job.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, BACKEND } from './harness.mjs';
import { startRedis, listen, waitFor } from './fleet_harness.mjs';

const skip = BACKEND !== 'sqlite' && 'installing the npm package does not depend on the store backend';

// The exact versions the rest of the suite runs (spec/package-lock.json).
const LOCK = JSON.parse(readFileSync(join(ROOT, 'spec', 'package-lock.json'), 'utf8')).packages;
const VERSIONS = [
  ['bullmq 6', LOCK['node_modules/bullmq'].version],
  ['bullmq 5', LOCK['node_modules/bullmq5'].version],
];

// The install commands of docs/bullmq.md: the ```sh block with `npm pack`.
function documentedInstall() {
  const doc = readFileSync(join(ROOT, 'docs', 'bullmq.md'), 'utf8');
  const block = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => /\bnpm pack\b/.test(b));
  assert.ok(block, 'docs/bullmq.md has no ```sh block with `npm pack`');
  const lines = block.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.ok(lines.some((l) => /^npm install .*\bbullmq@\d+\b/.test(l)),
    `docs/bullmq.md's install block has no \`npm install ... bullmq@N\`:\n${block}`);
  return lines;
}

// npm, bounded in time and output, with a private cache-friendly config and
// nothing inherited from an npm that may have started the tests.
function sh(cmd, cwd, ms = 120000) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  Object.assign(env, {
    npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false',
    npm_config_update_notifier: 'false', npm_config_loglevel: 'error',
  });
  delete env.NODE_PATH;
  return new Promise((resolveP) => {
    execFile('sh', ['-e', '-c', cmd], { cwd, env, timeout: ms, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
      (err, stdout, stderr) => resolveP({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

// What the doc's example does, plus what the test observes: the worker
// follows Sluice's desired state and runs a job. Exits 0 only if both held.
const WORKER = `
import { Worker, Queue } from 'bullmq';
import { attach } from 'sluice-bullmq';

const port = Number(process.argv[2]);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const fail = (why) => { console.error(why); process.exit(3); };
setTimeout(() => fail('timed out'), 20000).unref();

const worker = new Worker('install-check', async (job) => job.data.n * 2, { connection, concurrency: 1 });
worker.on('error', (e) => fail('worker error: ' + e.message));
const sluice = attach(worker, { queue: 'install-check', redis: 'redis://127.0.0.1:' + port,
                                id: 'install-check-1', heartbeatMs: 100 });
const done = new Promise((res) => worker.on('completed', (job, result) => res(result)));
const queue = new Queue('install-check', { connection });
await queue.add('j', { n: 21 });
const result = await done;
const t0 = Date.now();
while (worker.concurrency !== 3 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify({ result, concurrency: worker.concurrency, version: sluice.version }));
await sluice.close();
await worker.close();
await queue.close();
`;

// node resolves packages from every parent directory: a node_modules above
// the project would hide a missing dependency.
function assertNoParentModules(dir) {
  for (let d = dirname(dir); ; d = dirname(d)) {
    assert.ok(!existsSync(join(d, 'node_modules')), `${d}/node_modules would leak into the install check`);
    if (d === dirname(d)) break;
  }
}

let redis;
const dirs = [];
before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (redis) await redis.cleanup();
});

for (const [label, version] of VERSIONS) {
  test(`${label} (${version}): the install of docs/bullmq.md gives a worker that follows Sluice`, { skip, timeout: 170000 }, async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'sluice-bullmq-install-')));
    dirs.push(dir);
    assertNoParentModules(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'install-check', private: true }));
    for (const line of documentedInstall()) {
      const cmd = line.replaceAll('/path/to/sluice', ROOT).replace(/\bbullmq@\d+\b/g, `bullmq@${version}`);
      const r = await sh(cmd, dir);
      assert.equal(r.code, 0, `\`${cmd}\` failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'bullmq', 'package.json'), 'utf8'));
    assert.equal(installed.version, version);

    // Sluice wants 3: the worker must apply it and say so on <prefix>:reports.
    const queue = 'install-check';
    const c = redis.client();
    await c.flushall();                      // nothing left from the other version's run
    await c.hset('sluice:desired', queue, JSON.stringify({ queue, concurrency: 3, version: 1, at: new Date().toISOString() }));
    const seen = await listen(redis, 'sluice:reports');
    writeFileSync(join(dir, 'worker.mjs'), WORKER);
    const r = await sh(`node worker.mjs ${redis.port}`, dir, 30000);
    assert.equal(r.code, 0, `the worker failed (${r.code}):\n${r.stdout}\n${r.stderr.slice(0, 4000)}`);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()), { result: 42, concurrency: 3, version: 1 });
    assert.ok(await waitFor(() => seen.some((m) => m.event === 'ack' && m.worker === 'install-check-1'), 2000),
      `no ack on sluice:reports: ${JSON.stringify(seen)}`);
    const ack = seen.find((m) => m.event === 'ack' && m.worker === 'install-check-1');
    assert.equal(ack.concurrency, 3);
    assert.equal(ack.version, 1);
    assert.match(ack.agent, /^sluice-bullmq\//);
    assert.ok(await waitFor(() => seen.some((m) => m.event === 'bye' && m.worker === 'install-check-1'), 2000),
      'no bye on close()');
  });
}
