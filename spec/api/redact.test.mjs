// redact.test.mjs — no part of a password given in a --db or --redis URL, in
// any form, ever reaches sluiced's stdout or stderr: not in a log line, an
// error message or a usage error. PostgreSQL is unreachable (127.0.0.1:1)
// unless SLUICE_TEST_PG names a server; Redis is always unreachable.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SLUICED, ROOT, PG, TEST_POLICY, tempDir } from './harness.mjs';

// Every password is built from these markers, found nowhere else in the
// output: if none shows, no part of the password shows.
const MARKS = ['Zq7', 'M4w', 'X9k'];

function assertHidden(output, what) {
  for (const m of MARKS) {
    assert.ok(!output.includes(m), `${what} shows part of the password ('${m}'):\n${output}`);
  }
}

// Run sluiced until it exits, or until `until` matches its output (then
// SIGTERM after `linger` ms so later log lines are seen too). Resolves
// { code, out } with stdout and stderr together.
function runSluiced(args, { env = {}, until, linger = 0, timeoutMs = 15000 } = {}) {
  return new Promise((resolveP) => {
    const proc = spawn(SLUICED, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stopping = false;
    const stop = () => { if (!stopping) { stopping = true; proc.kill('SIGTERM'); } };
    const timer = setTimeout(() => { out += '\n[test: timed out]\n'; proc.kill('SIGKILL'); }, timeoutMs);
    const collect = (d) => {
      out += d;
      if (until && !stopping && until.test(out)) setTimeout(stop, linger);
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    proc.on('error', (e) => { out += `\n[test: ${e.message}]\n`; });
    proc.on('close', (code, signal) => { clearTimeout(timer); resolveP({ code: code ?? signal, out }); });
  });
}

// A directory with a policy, so that serve gets as far as it can.
function serveDir() {
  const dir = tempDir('sluice-redact-');
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'test.lua'), TEST_POLICY);
  return dir;
}

function serveArgs(dir, db, extra = []) {
  return ['serve', '--listen', '127.0.0.1:0', '--db', db, '--policies', join(dir, 'policies'),
    '--scripts', join(ROOT, 'scripts'), '--ui', join(ROOT, 'ui'), '--threads', '2', ...extra];
}

// ---- PostgreSQL URLs against a server that is not there ---------------------------

const NOWHERE = '127.0.0.1:1';

const pgForms = [
  { name: 'the user info', url: `postgres://sluice:Zq7M4wX9k@${NOWHERE}/sluice` },
  { name: 'the postgresql scheme', url: `postgresql://sluice:Zq7M4wX9k@${NOWHERE}/sluice` },
  { name: 'the password parameter', url: `postgres://${NOWHERE}/sluice?user=sluice&password=Zq7M4wX9k` },
  { name: 'the sslpassword parameter', url: `postgres://sluice@${NOWHERE}/sluice?sslmode=disable&sslpassword=Zq7M4wX9k` },
  { name: 'percent-encoded at sign, slash and colon', url: `postgres://sluice:Zq7%40M4w%2FX9k%3A@${NOWHERE}/sluice` },
  { name: 'a raw slash', url: `postgres://sluice:Zq7/M4w/X9k@${NOWHERE}/sluice` },
  { name: 'a raw at sign', url: `postgres://sluice:Zq7@M4w@X9k@${NOWHERE}/sluice` },
  { name: 'a bad percent escape', url: `postgres://sluice:Zq7%zzM4wX9k@${NOWHERE}/sluice` },
  { name: 'the keyword/value form', url: `host=127.0.0.1 port=1 user=sluice password='Zq7 M4w X9k'` },
  { name: 'an unsupported scheme', url: `mysql://sluice:Zq7M4wX9k@${NOWHERE}/sluice` },
];

for (const form of pgForms) {
  test(`migrate_serve_and_token_never_print_a_postgres_password_given_in_${form.name.replaceAll(/\W+/g, '_')}`,
    async () => {
      const dir = serveDir();
      try {
        const runs = {
          migrate: await runSluiced(['migrate', '--db', form.url]),
          'migrate (SLUICE_DB)': await runSluiced(['migrate'], { env: { SLUICE_DB: form.url } }),
          serve: await runSluiced(serveArgs(dir, form.url)),
          'token list': await runSluiced(['token', 'list', '--db', form.url]),
        };
        for (const [what, r] of Object.entries(runs)) {
          assert.notEqual(r.code, 0, `${what} succeeded against ${NOWHERE}:\n${r.out}`);
          assert.match(r.out, /sluiced/, `${what} said nothing about the failure`);
          assertHidden(r.out, what);
        }
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
}

test('a_mistyped_db_option_or_a_url_without_db_is_not_echoed_with_its_password', async () => {
  const url = `postgres://sluice:Zq7M4wX9k@${NOWHERE}/sluice`;
  for (const args of [['migrate', `--dbx=${url}`], ['migrate', url], ['serve', '--listen', '127.0.0.1:0', url]]) {
    const r = await runSluiced(args);
    assert.notEqual(r.code, 0, r.out);
    assertHidden(r.out, `the usage error of ${args[0]}`);
  }
});

// ---- PostgreSQL URLs against the test server (trust auth: any password works) ----------

function psql(url, sql) {
  return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { encoding: 'utf8' }).trim();
}

const realForms = [
  { name: 'user_info', make: (u, db) => `postgres://${u.username}:Zq7M4wX9k@${u.host}/${db}` },
  { name: 'percent_encoded_user_info', make: (u, db) => `postgresql://${u.username}:Zq7%40M4w%2FX9k@${u.host}/${db}` },
  { name: 'password_query_parameter', make: (u, db) => `postgres://${u.host}/${db}?user=${u.username}&password=Zq7M4wX9k` },
];

for (const form of realForms) {
  test(`a_real_postgres_migrate_and_serve_show_the_db_with_the_password_masked_in_${form.name}`,
    { skip: !PG && 'needs SLUICE_TEST_PG' }, async () => {
      const name = `sluice_redact_${process.pid}_${form.name}`;
      const dir = serveDir();
      psql(PG, `CREATE DATABASE ${name}`);
      try {
        const url = form.make(new URL(PG), name);
        const migrate = await runSluiced(['migrate', '--db', url]);
        assert.equal(migrate.code, 0, migrate.out);
        assert.match(migrate.out, /database .*\*\*\*.* is up to date/);
        assertHidden(migrate.out, 'migrate');
        const serve = await runSluiced(serveArgs(dir, url, ['--redis', `redis://${NOWHERE}`]), { until: /"msg":"listening"/, linger: 500 });
        assert.match(serve.out, /"msg":"listening".*"db":"[^"]*\*\*\*/, serve.out);
        assert.equal(serve.code, 0, `serve did not stop cleanly:\n${serve.out}`);
        assertHidden(serve.out, 'serve');
      } finally {
        rmSync(dir, { recursive: true, force: true });
        psql(PG, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }
    });
}

// ---- Redis URLs against a server that is not there ------------------------------------

const redisForms = [
  { name: 'a password without a user', url: `redis://:Zq7M4wX9k@${NOWHERE}` },
  { name: 'a user and a password', url: `redis://default:Zq7M4wX9k@${NOWHERE}/0` },
  { name: 'TLS', url: `rediss://:Zq7M4wX9k@${NOWHERE}` },
  { name: 'percent-encoded at sign and slash', url: `redis://:Zq7%40M4w%2FX9k@${NOWHERE}` },
  { name: 'a raw colon', url: `redis://:Zq7:M4w:X9k@${NOWHERE}` },
  { name: 'a raw at sign', url: `redis://:Zq7@M4w@X9k@${NOWHERE}` },
  { name: 'a raw slash', url: `redis://:Zq7/M4w/X9k@${NOWHERE}` },
  { name: 'SLUICE_REDIS_PASSWORD', url: `redis://${NOWHERE}`, env: { SLUICE_REDIS_PASSWORD: 'Zq7M4wX9k' } },
];

describe('redis', () => {
  let dir;
  before(async () => {
    dir = serveDir();
    const r = await runSluiced(['migrate', '--db', `sqlite:${join(dir, 'sluice.db')}`]);
    assert.equal(r.code, 0, r.out);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const form of redisForms) {
    test(`serve_never_logs_a_redis_password_given_in_${form.name.replaceAll(/\W+/g, '_')}`, async () => {
      // Accepted URLs: serve starts and logs that Redis is unavailable;
      // refused ones: serve stops with a message. Neither may show the password.
      const r = await runSluiced(serveArgs(dir, `sqlite:${join(dir, 'sluice.db')}`, ['--redis', form.url]),
        { env: form.env, until: /"msg":"listening"/, linger: 1500 });
      assert.ok(/redis/i.test(r.out), `nothing about Redis was said:\n${r.out}`);
      if (/"msg":"listening"/.test(r.out)) assert.equal(r.code, 0, `serve did not stop cleanly:\n${r.out}`);
      assertHidden(r.out, 'serve');
    });
  }
});
