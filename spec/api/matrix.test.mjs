// matrix.test.mjs — every route × every kind of caller. The expected answer
// is derived from the route's scope, so the table below is the contract:
// adding a route means adding a row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createToken, cli, sleep } from './harness.mjs';

// [method, path, scope, status when allowed, body]
const ROUTES = [
  ['GET', '/healthz', 'none', 200],
  ['POST', '/api/v1/session', 'none', 401, { token: 'slc_000000000000_' + '0'.repeat(64) }],
  ['GET', '/api/v1/whoami', 'any', 200],
  ['DELETE', '/api/v1/session', 'any', 200],
  ['GET', '/api/v1/scaling', 'scaling:read', 200],
  ['GET', '/api/v1/scaling/alpha', 'scaling:read', 200],
  ['PUT', '/api/v1/scaling/alpha', 'scaling:write', 200, { desired_concurrency: 5, reason: 'matrix' }],
  ['GET', '/api/v1/scaling/alpha/history', 'scaling:read', 200],
  ['POST', '/api/v1/scaling/alpha/revert', 'scaling:write', 200, { to_version: 1, reason: 'matrix' }],
  ['GET', '/api/v1/approvals', 'scaling:approve', 200],
  ['GET', '/api/v1/approvals/0123456789abcdef', 'scaling:read', 404],
  ['POST', '/api/v1/approvals/0123456789abcdef/approve', 'scaling:approve', 404, {}],
  ['POST', '/api/v1/approvals/0123456789abcdef/reject', 'scaling:approve', 404, { reason: 'matrix' }],
  ['POST', '/api/v1/scaling/alpha/pause', 'scaling:write', 200, { reason: 'matrix' }],
  ['POST', '/api/v1/scaling/alpha/resume', 'scaling:write', 200, { reason: 'matrix' }],
  ['GET', '/api/v1/autoscalers', 'scaling:read', 200],
  ['GET', '/api/v1/autoscalers/alpha', 'scaling:read', 404],
  ['POST', '/api/v1/autoscalers/alpha/hold', 'scaling:write', 404, { duration_s: 60, reason: 'matrix' }],
  ['POST', '/api/v1/autoscalers/alpha/release', 'scaling:write', 404, { reason: 'matrix' }],
  ['GET', '/api/v1/audit', 'scaling:read', 200],
  ['GET', '/api/v1/policies', 'scaling:read', 200],
  ['GET', '/api/v1/flags', 'admin', 200],
  ['GET', '/api/v1/flags/writes', 'admin', 200],
  ['PUT', '/api/v1/flags/writes', 'admin', 200, { enabled: true, reason: 'matrix' }],
  ['GET', '/api/v1/tokens', 'admin', 200],
  ['POST', '/api/v1/tokens', 'admin', 201, { name: 'made-by-matrix', scopes: ['scaling:read'] }],
  ['DELETE', '/api/v1/tokens/000000000000', 'admin', 404],
];

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const CALLERS = ['none', 'garbage', 'expired', 'revoked', 'read', 'write', 'admin', 'cookie_without_csrf', 'cookie_with_csrf'];
const SCOPES_OF = { read: ['scaling:read'], write: ['scaling:write'], admin: ['scaling:read', 'scaling:write', 'scaling:approve', 'admin'],
  cookie_without_csrf: ['scaling:read', 'scaling:write', 'scaling:approve', 'admin'], cookie_with_csrf: ['scaling:read', 'scaling:write', 'scaling:approve', 'admin'] };

function expected(route, caller) {
  const [method, , scope, ok] = route;
  if (scope === 'none') return [ok];
  if (['none', 'garbage', 'expired', 'revoked'].includes(caller)) return [401, 'unauthenticated'];
  if (caller === 'cookie_without_csrf' && UNSAFE.has(method)) return [403, 'csrf'];
  if (scope !== 'any' && !SCOPES_OF[caller].includes(scope)) return [403, 'forbidden'];
  return [ok];
}

let srv;
const creds = {};
before(async () => {
  srv = await startServer();
  const db = srv.dbUrl;
  creds.expired = createToken(db, 'short-lived', 'admin', ['--expires-in', '1s']);
  const revoked = createToken(db, 'gone', 'admin');
  const id = revoked.split('_')[1];
  assert.equal(cli(['token', 'revoke', id, '--db', db]).status, 0);
  creds.revoked = revoked;
  creds.read = srv.tokens.read;
  creds.write = srv.tokens.write;
  creds.admin = srv.tokens.admin;
  creds.garbage = 'slc_nothing_here';
  await sleep(1100);   // let the expiring token expire
});
after(async () => { await srv.cleanup(); });

// A fresh cookie session per call: logout routes end the session they use.
async function login() {
  const r = await srv.request('POST', '/api/v1/session', { json: { token: creds.admin } });
  assert.equal(r.status, 200, r.text);
  const cookie = /sluice_session=([0-9a-f]+)/.exec(r.headers['set-cookie'][0])[1];
  return { cookie, csrf: r.json.csrf_token };
}

for (const route of ROUTES) {
  for (const caller of CALLERS) {
    const [method, path, scope] = route;
    const [status, code] = expected(route, caller);
    test(`${method} ${path} [${scope}] as ${caller} -> ${status}${code ? ' ' + code : ''}`, async () => {
      const opts = { json: route[4] };
      if (caller.startsWith('cookie')) {
        const s = await login();
        opts.cookie = s.cookie;
        if (caller === 'cookie_with_csrf') opts.csrf = s.csrf;
      } else if (caller !== 'none') {
        opts.token = creds[caller];
      }
      const before = code ? await srv.dataSnapshot() : null;
      const r = await srv.request(method, path, opts);
      assert.equal(r.status, status, `${r.status} ${r.text}`);
      assert.equal(r.headers['x-request-id']?.length > 0, true);
      if (code) {
        assert.equal(r.json.error.code, code, r.text);
        if (code === 'forbidden') assert.equal(r.json.error.details.required_scope, scope);
        assert.equal(await srv.dataSnapshot(), before, 'a refused request changed data');
      }
    });
  }
}
