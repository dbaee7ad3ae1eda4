// docs_examples.test.mjs — the shell examples of the operator docs run as
// written. Every ```sh block of the files below is run with `sh -e`, in
// order, against a real sluiced on the shipped policies/ with one
// sluice-worker per queue, SLUICE_URL and SLUICE_TOKEN (admin) set, and
// build/ (sluicectl) on PATH. A block must exit 0: examples that show a
// refusal say so with `|| echo ...`. Output samples use ```text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startServer, ROOT, BUILD } from './harness.mjs';
import { startRedis, startWorker, reports, waitFor } from './fleet_harness.mjs';

const DOCS = ['usage.md', 'safeguards.md', 'troubleshooting.md', 'teams.md', 'teams-scope.md', 'teams-pause.md'];
const POLICIES = readFileSync(join(ROOT, 'policies', 'queues.lua'), 'utf8') + '\n' +
                 readFileSync(join(ROOT, 'policies', 'alerts.lua'), 'utf8');

let redis, srv, workers = [];
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICIES, extraArgs: ['--redis', redis.url] });
  const seen = await reports(redis);
  workers = ['ingestion', 'build', 'workflow'].map((q) => startWorker(redis, q, ['--id', `${q}-docs`]));
  await waitFor(() => Object.keys(seen.latest).length === 3, 5000);
});
after(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

function blocks(file) {
  const text = readFileSync(join(ROOT, 'docs', file), 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

function run(script) {
  return new Promise((resolveP) => {
    execFile('sh', ['-e', '-c', script], {
      cwd: ROOT, timeout: 60000,
      env: { ...process.env, PATH: `${BUILD}:${process.env.PATH}`, SLUICE_URL: `http://127.0.0.1:${srv.port}`,
        SLUICE_TOKEN: srv.tokens.admin, SLUICE_DB: srv.dbUrl },
    }, (err, stdout, stderr) => resolveP({ code: err ? err.code : 0, stdout, stderr }));
  });
}

for (const file of DOCS) {
  test(`the shell examples of docs/${file} run as written`, { skip: !existsSync(join(ROOT, 'docs', file)) && 'not written yet' }, async () => {
    const list = blocks(file);
    assert.ok(list.length > 0, `no \`\`\`sh examples in docs/${file}`);
    for (const [i, script] of list.entries()) {
      const r = await run(script);
      assert.equal(r.code, 0, `docs/${file} example ${i + 1} failed:\n${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    }
  });
}
