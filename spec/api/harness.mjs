// harness.mjs — start real sluiced processes on real SQLite files and talk
// to them over HTTP. Every test file uses it; nothing here is mocked.
//
//   const srv = await startServer({ policies: TEST_POLICY })
//   const r = await srv.request('GET', '/api/v1/scaling', { token: srv.tokens.read })
//   await srv.stop()   // SIGTERM; asserts a clean exit (no leak, no crash)

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import http from 'node:http';
import assert from 'node:assert/strict';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BUILD = process.env.SLUICE_BUILD || join(ROOT, 'build');
export const SLUICED = join(BUILD, 'sluiced');

// A policy with a queue per behaviour under test, so tests don't trip over
// each other's cooldowns.
export const TEST_POLICY = `
defaults { default = 4, min = 1, max = 32, max_step = 8, confirm_above = 24 }
queue "alpha"   { }
queue "beta"    { max = 64, max_step = 16, confirm_above = 48 }
queue "cool"    { cooldown_s = 30 }
queue "budget"  { changes_per_hour = 2 }
queue "zero"    { min = 0, default = 2 }
queue "guarded" { }
function validate(change, ctx)
  if change.queue == "guarded" and change.reason:find("forbidden") then
    return false, "reasons may not say forbidden"
  end
  if change.queue == "guarded" and change.reason == "spin" then
    while true do end
  end
  return true
end
`;

// The store the suite runs on: SQLite files, or databases of the PostgreSQL
// server named by SLUICE_TEST_PG (tools/test.sh starts one and runs the
// same suite again).
export const PG = process.env.SLUICE_TEST_PG || '';
export const BACKEND = PG ? 'postgres' : 'sqlite';

function psql(url, sql) {
  return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { encoding: 'utf8' }).trim();
}

// A fresh, empty database for one server; returns its URL.
function freshPgDatabase() {
  const name = `sluice_t_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  psql(PG, `CREATE DATABASE ${name}`);
  const u = new URL(PG);
  u.pathname = `/${name}`;
  return { name, url: u.toString() };
}

export function tempDir(prefix = 'sluice-test-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

// Run sluiced as a command (migrate, token, policy check). Returns
// { status, stdout, stderr } without throwing.
export function cli(args, opts = {}) {
  try {
    const stdout = execFileSync(SLUICED, args, {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000, ...opts,
    });
    return { status: 0, stdout, stderr: '' };
  } catch (e) {
    // status is null when the process could not start or was killed.
    return { status: e.status, stdout: e.stdout || '', stderr: e.stderr || String(e.message) };
  }
}

export function createToken(dbUrl, name, scopes, extra = []) {
  const r = cli(['token', 'create', '--db', dbUrl, '--name', name, '--scopes', scopes, ...extra]);
  assert.equal(r.status, 0, `token create failed: ${r.stderr}`);
  return r.stdout.trim();
}

// Low-level HTTP: the raw path is sent as given (no URL normalisation), so
// tests can send "..", invalid UTF-8 and odd methods.
export function rawRequest(port, method, path, { headers = {}, body } = {}) {
  return new Promise((resolveP, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolveP({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export async function startServer({ policies = TEST_POLICY, env = 'local', db, scriptsDir,
                                     extraArgs = [], tokens = true, shareWith, envVars } = {}) {
  const dir = tempDir();
  const policyDir = join(dir, 'policies');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'test.lua'), policies);
  // shareWith: a second replica on the first one's database and tokens.
  const pg = PG && !shareWith ? freshPgDatabase() : null;
  db = shareWith ? shareWith.db : db || join(dir, 'sluice.db');
  const dbUrl = shareWith ? shareWith.dbUrl : pg ? pg.url : `sqlite:${db}`;
  const madeTokens = shareWith ? shareWith.tokens : {};
  if (tokens && !shareWith) {
    madeTokens.admin = createToken(dbUrl, 'root-admin', 'admin');
    madeTokens.read = createToken(dbUrl, 'reader', 'scaling:read');
    madeTokens.write = createToken(dbUrl, 'writer', 'scaling:write');
    madeTokens.readwrite = createToken(dbUrl, 'ci-job', 'scaling:read,scaling:write');
  }
  const srv = {
    dir, db, dbUrl, policyDir, tokens: madeTokens, env, scriptsDir, extraArgs, log: '', port: 0,
    // One value from the store, whatever the backend.
    sql(query) {
      return pg ? psql(dbUrl, query) : execFileSync('sqlite3', [db, query], { encoding: 'utf8' }).trim();
    },
    async start() {
      const args = ['serve', '--listen', '127.0.0.1:0', '--db', dbUrl, '--env', env,
        '--policies', policyDir, '--scripts', scriptsDir || join(ROOT, 'scripts'),
        '--ui', join(ROOT, 'ui'), '--threads', '2', '--reload-ms', '100', ...extraArgs];
      // envVars: the process environment (e.g. SLUICE_REDIS_PASSWORD).
      this.proc = spawn(SLUICED, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(envVars ? { env: envVars } : {}) });
      this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => r({ code, signal })));
      this.port = await new Promise((resolveP, reject) => {
        let buf = '';
        const timer = setTimeout(() => {
          this.proc.kill('SIGKILL');           // never leave a half-started server behind
          reject(new Error(`sluiced did not announce its port within 15 s:\n${this.log}`));
        }, 15000);
        this.proc.stderr.on('data', (d) => {
          this.log += d;
          buf += d;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            try {
              const j = JSON.parse(line);
              if (j.msg === 'listening') { clearTimeout(timer); resolveP(j.port); }
            } catch { /* not JSON: sanitizer or usage output, kept in this.log */ }
          }
        });
        this.proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`sluiced exited ${code}:\n${this.log}`)); });
      });
      return this;
    },
    // Stop with SIGTERM and require a clean exit: under the sanitizers a
    // leak or an error makes the exit status non-zero.
    async stop() {
      if (!this.proc) return;
      this.proc.kill('SIGTERM');
      const { code, signal } = await this.exited;
      this.proc = null;
      assert.equal(code, 0, `sluiced exited with ${code ?? signal}; log:\n${this.log.slice(-4000)}`);
    },
    async cleanup() {
      try { await this.stop(); } finally {
        rmSync(dir, { recursive: true, force: true });
        if (pg) psql(PG, `DROP DATABASE IF EXISTS ${pg.name} WITH (FORCE)`);
      }
    },
    request(method, path, { token, cookie, csrf, headers = {}, body, json } = {}) {
      const h = { ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      if (cookie) h.Cookie = `sluice_session=${cookie}`;
      if (csrf) h['X-CSRF-Token'] = csrf;
      if (json !== undefined) {
        body = JSON.stringify(json);
        h['Content-Type'] = 'application/json';
      }
      return rawRequest(this.port, method, path, { headers: h, body });
    },
    // A snapshot of everything a bad request must leave alone.
    async dataSnapshot() {
      const t = await this.request('GET', '/api/v1/scaling', { token: this.tokens.admin });
      const a = await this.request('GET', '/api/v1/audit?limit=500', { token: this.tokens.admin });
      const f = await this.request('GET', '/api/v1/flags', { token: this.tokens.admin });
      assert.equal(t.status, 200);
      assert.equal(a.status, 200);
      return JSON.stringify({ targets: t.json, audit: a.json, flags: f.json });
    },
  };
  return srv.start();
}

// PUT a change; the common case in tests.
export function putScaling(srv, queue, body, token = srv.tokens.admin) {
  return srv.request('PUT', `/api/v1/scaling/${queue}`, { token, json: body });
}

// Assert the error envelope of api.md.
export function assertError(res, status, code) {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${res.text}`);
  assert.ok(res.json && res.json.error, `not an error envelope: ${res.text}`);
  assert.equal(res.json.error.code, code, `expected code ${code}: ${res.text}`);
  assert.equal(typeof res.json.error.message, 'string');
  assert.ok(res.json.error.message.length > 0);
  assert.equal(res.json.request_id, res.headers['x-request-id']);
  assert.match(res.headers['content-type'], /^application\/json/);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn until it returns truthy or ms pass; returns the value or undefined.
export async function waitFor(fn, ms = 3000, every = 50) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(every);
  }
  return undefined;
}
