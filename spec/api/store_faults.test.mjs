// store_faults.test.mjs — the database misbehaving under a running sluiced:
// a change stuck behind another replica's lock (PostgreSQL), and a volume
// that fills up (SQLite on a real 2 MiB tmpfs, as root). What must hold:
// nothing half-written, a clear error code, /healthz and reads answering,
// and service back by itself when the database is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { openSync, writeSync, closeSync, unlinkSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, assertError, cli, tempDir, waitFor, BACKEND } from './harness.mjs';

// ---- PostgreSQL: a change stuck behind a lock ----------------------------------

// A psql session that holds the advisory lock store_pg.c takes for a queue's
// changes, as a replica frozen inside a change would. Resolves once held.
function holdQueueLock(dbUrl, queue) {
  const p = spawn('psql', [dbUrl, '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const held = new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => { out += d; if (out.includes('held')) resolve(); });
    p.on('exit', (code) => reject(new Error(`psql exited ${code}: ${out}`)));
  });
  p.stdin.write(`BEGIN;\nSELECT pg_advisory_xact_lock(hashtext('sluice.queue:' || '${queue}'));\nSELECT 'held';\n`);
  return {
    held,
    async release() {
      p.stdin.end('COMMIT;\n');
      await new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)));
    },
    kill() { p.kill(); },
  };
}

// Time one request; resolves to the response with .ms.
async function timed(promise) {
  const t0 = Date.now();
  const r = await promise;
  r.ms = Date.now() - t0;
  return r;
}

test('a_change_stuck_behind_a_held_queue_lock_answers_503_store_busy_and_never_takes_every_thread',
  { skip: BACKEND !== 'postgres' && 'PostgreSQL only (SLUICE_TEST_PG)' }, async () => {
    // --threads 2 (the harness default): one thread may write, one stays free.
    const srv = await startServer();
    let lock;
    try {
      const before = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
      assert.equal(before.status, 200);
      const audited = () => srv.sql("SELECT COUNT(*) FROM scaling_audit WHERE subject = 'alpha'");
      const auditBefore = audited();
      lock = holdQueueLock(srv.dbUrl, 'alpha');
      await lock.held;

      const change = (i) => timed(putScaling(srv, 'alpha', { desired_concurrency: 10 + i, reason: `stuck ${i}` }));
      const first = change(1);                   // takes the write slot, waits on the lock
      await new Promise((r) => setTimeout(r, 200));
      const others = [change(2), change(3)];     // no write slot left
      const health = timed(srv.request('GET', '/healthz'));
      const read = timed(srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read }));

      for (const r of [await health, await read]) {
        assert.equal(r.status, 200, r.text);
        assert.ok(r.ms < 1000, `a request waited ${r.ms} ms behind stuck changes`);
      }
      for (const r of await Promise.all(others)) {
        assertError(r, 503, 'store_busy');
        assert.equal(r.headers['retry-after'], '1');
        assert.ok(r.ms < 1000, `a change beyond the write slots waited ${r.ms} ms`);
      }
      const stuck = await first;                 // lock_timeout (2 s by default) ends its wait
      assertError(stuck, 503, 'store_busy');
      assert.equal(stuck.headers['retry-after'], '1');
      assert.match(stuck.json.error.message, /busy with another change to this queue; nothing was changed/);
      assert.ok(stuck.ms >= 1500 && stuck.ms < 5000, `the stuck change answered after ${stuck.ms} ms`);

      // Other queues are not blocked; the locked one is unchanged and unaudited.
      const other = await putScaling(srv, 'beta', { desired_concurrency: 9, reason: 'another queue' });
      assert.equal(other.status, 200, other.text);
      const during = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
      assert.deepEqual(during.json, before.json);
      assert.equal(audited(), auditBefore);

      // The lock gone, the same pool (its timed-out connections rolled back) writes again.
      await lock.release();
      lock = null;
      const after = await putScaling(srv, 'alpha', { desired_concurrency: 12, reason: 'after the lock' });
      assert.equal(after.status, 200, after.text);
      assert.equal(after.json.version, before.json.version + 1);
      assert.doesNotMatch(srv.log, /current transaction is aborted|could not roll back/);
    } finally {
      lock?.kill();
      await srv.cleanup();
    }
  });

test('pg_lock_timeout_is_an_option',
  { skip: BACKEND !== 'postgres' && 'PostgreSQL only (SLUICE_TEST_PG)' }, async () => {
    const srv = await startServer({ extraArgs: ['--pg-lock-timeout-ms', '600'] });
    let lock;
    try {
      lock = holdQueueLock(srv.dbUrl, 'alpha');
      await lock.held;
      const r = await timed(putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'short lock timeout' }));
      assertError(r, 503, 'store_busy');
      assert.ok(r.ms >= 500 && r.ms < 1500, `answered after ${r.ms} ms with a 600 ms lock timeout`);
    } finally {
      await lock?.release();
      await srv.cleanup();
    }
  });

test('pg_timeout_options_are_validated', async () => {
  for (const [args, msg] of [
    [['--pg-lock-timeout-ms', '-1'], /--pg-lock-timeout-ms: expected an integer in 0\.\.3600000/],
    [['--pg-statement-timeout-ms', 'soon'], /--pg-statement-timeout-ms: expected an integer/],
  ]) {
    const r = cli(['serve', '--db', 'sqlite:/nonexistent/x.db', ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
  const env = { ...process.env, SLUICE_PG_IDLE_TX_TIMEOUT_MS: 'x' };
  const r = cli(['serve', '--db', 'sqlite:/nonexistent/x.db'], { env });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /SLUICE_PG_IDLE_TX_TIMEOUT_MS: expected an integer/);
});

// ---- SQLite: a full volume ---------------------------------------------------------

// A 2 MiB tmpfs of our own, or why there cannot be one here.
function smallVolume() {
  if (process.getuid?.() !== 0) return { why: 'needs root to mount a tmpfs' };
  const dir = tempDir('sluice-vol-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { why: `cannot mount a tmpfs: ${String(e.stderr || e.message).trim()}` };
  }
  return {
    dir,
    cleanup() {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Write a file until the volume says ENOSPC; returns its path.
function fillVolume(dir) {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096, 0x5a);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if (e.code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

const vol = BACKEND === 'sqlite' ? smallVolume() : { why: 'SQLite only' };
test.after(() => vol.cleanup?.());

test('a_2_MiB_volume_holds_thousands_of_changes_and_a_full_one_answers_507_store_full_until_space_returns',
  { skip: vol.why || false }, async () => {
    // Thousands of changes from one token: the per-token write rate is off.
    const srv = await startServer({ db: join(vol.dir, 'sluice.db'), extraArgs: ['--write-rate', '0'] });
    try {
      // 3000 changes (alpha has no cooldown and no budget) fit, log included.
      for (let i = 0; i < 3000; i++) {
        const r = await putScaling(srv, 'alpha', { desired_concurrency: 2 + (i % 2), reason: `change ${i}` });
        assert.equal(r.status, 200, `change ${i}: ${r.text}`);
      }
      const wal = statSync(join(vol.dir, 'sluice.db-wal')).size;
      assert.ok(wal <= 512 * 1024, `the write-ahead log is ${wal} bytes`);

      const filler = fillVolume(vol.dir);
      // The log may still have room it already owns; a few more may fit.
      let r;
      for (let i = 0; i < 500; i++) {
        r = await putScaling(srv, 'alpha', { desired_concurrency: 2 + (i % 2), reason: `on a full volume ${i}` });
        if (r.status !== 200) break;
      }
      assertError(r, 507, 'store_full');
      assert.equal(r.json.error.message, 'the database volume is full; nothing was changed');
      assert.equal(r.headers['retry-after'], undefined);
      const before = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
      assert.equal(before.status, 200, 'reads answer on a full volume');
      assertError(await putScaling(srv, 'alpha', { desired_concurrency: 9, reason: 'still full' }), 507, 'store_full');
      const still = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.read });
      assert.deepEqual(still.json, before.json, 'a refused change wrote nothing');

      const ready = await srv.request('GET', '/readyz');
      assertError(ready, 503, 'not_ready');
      assert.equal(ready.json.error.details.store, 'full');
      assert.match(ready.json.error.message, /store volume full/);
      assert.equal((await srv.request('GET', '/healthz')).status, 200);
      // SQLite may end the transaction itself; nothing tries to roll it back twice.
      assert.ok(await waitFor(() => /database volume full/.test(srv.log)), 'no "volume full" in the log');
      assert.doesNotMatch(srv.log, /cannot rollback/);
      assert.equal(srv.log.match(/database volume full/g)?.length, 1, 'said once, not per request');

      // Space back: the next change goes through, without a restart.
      unlinkSync(filler);
      const back = await srv.request('GET', '/readyz');
      assert.equal(back.json.store ?? back.json.error.details.store, 'up');
      const ok = await putScaling(srv, 'alpha', { desired_concurrency: 9, reason: 'space is back' });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.version, before.json.version + 1);
      // The log reaches us on its own pipe, maybe after the answer.
      assert.ok(await waitFor(() => /database volume has space again/.test(srv.log)), 'no "space again" in the log');
      assert.doesNotMatch(srv.log, /cannot rollback/);
    } finally {
      await srv.cleanup();
    }
  });
