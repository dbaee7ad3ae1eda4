// agent_doc.test.mjs — the minimal worker in docs/agent-c.md compiles as
// written, links against build/libsluice.a, and follows a real sluiced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { startServer, putScaling, tempDir, ROOT, BUILD } from './harness.mjs';
import { startRedis, reports, waitFor } from './fleet_harness.mjs';

test('the_minimal_worker_of_the_docs_compiles_and_follows_a_change', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'agent-c.md'), 'utf8');
  const code = /```c\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(code, 'no C example in docs/agent-c.md');
  const dir = tempDir();
  const src = join(dir, 'minimal.c');
  const bin = join(dir, 'minimal');
  writeFileSync(src, code);
  // the build line of the docs, with this build's flags (sanitizers too)
  const flags = (readFileSync(join(BUILD, '.flags'), 'utf8').match(/-fsanitize=\S+/g) || []);
  execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', ...flags, `-I${join(ROOT, 'agents', 'c')}`, src,
    join(BUILD, 'libsluice.a'), ...execFileSync('pkg-config', ['--libs', 'hiredis', 'jansson', 'openssl', 'libcurl'],
      { encoding: 'utf8' }).trim().split(/\s+/), '-lpthread', '-o', bin], { stdio: 'pipe' });
  const redis = await startRedis();
  const srv = await startServer({ extraArgs: ['--redis', redis.url] });
  const seen = await reports(redis);
  const proc = spawn(bin, [redis.url, 'alpha'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  try {
    assert.ok(await waitFor(() => Object.values(seen.latest).some((m) => m.queue === 'alpha'), 5000), 'no heartbeat');
    const r = await putScaling(srv, 'alpha', { desired_concurrency: 11, reason: 'docs example', wait_ms: 3000 });
    assert.deepEqual(r.json.acks, { expected: 1, acknowledged: 1, complete: true });
    assert.ok(await waitFor(() => out.includes('running 11 jobs at once'), 2000), out);
    const beat = Object.values(seen.latest).find((m) => m.queue === 'alpha');
    assert.equal(beat.agent, 'libsluice/0.3');
    proc.kill('SIGTERM');
    const codeOut = await new Promise((res) => proc.on('exit', res));
    assert.equal(codeOut, 0);
    assert.ok(await waitFor(() => seen.all.at(-1)?.event === 'bye', 2000), 'no bye');
  } finally {
    proc.kill('SIGKILL');
    await srv.cleanup();
    await redis.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
