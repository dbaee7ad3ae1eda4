// session.test.mjs — cookie sessions, CSRF, tokens, flags and read-only mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, putScaling, assertError, createToken, cli } from './harness.mjs';

let srv;
before(async () => { srv = await startServer({ env: 'production' }); });
after(async () => { await srv.cleanup(); });

async function login(token) {
  const r = await srv.request('POST', '/api/v1/session', { json: { token } });
  assert.equal(r.status, 200, r.text);
  const setCookie = r.headers['set-cookie'][0];
  return { r, setCookie, cookie: /sluice_session=([0-9a-f]{64});/.exec(setCookie)[1], csrf: r.json.csrf_token };
}

test('production_starts_read_only_and_refuses_writes_with_an_audit_entry', async () => {
  const who = await srv.request('GET', '/api/v1/whoami', { token: srv.tokens.admin });
  assert.deepEqual({ ...who.json, scopes: undefined }, { name: 'root-admin', environment: 'production',
    writes_enabled: false, via: 'token', scopes: undefined, queues: null });
  const r = await putScaling(srv, 'alpha', { desired_concurrency: 6, reason: 'try' });
  assertError(r, 403, 'writes_disabled');
  const h = await srv.request('GET', '/api/v1/scaling/alpha/history', { token: srv.tokens.admin });
  assert.equal(h.json.items[0].error_code, 'writes_disabled');
  assert.equal(h.json.items[0].outcome, 'rejected');
  const t = await srv.request('GET', '/api/v1/scaling/alpha', { token: srv.tokens.admin });
  assert.equal(t.json.version, 0);
});

test('read_only_is_checked_before_the_queue_is_known_and_unknown_names_are_not_audited', async () => {
  const before = await srv.dataSnapshot();
  assertError(await putScaling(srv, 'no-such-queue', { desired_concurrency: 6, reason: 'try' }), 403, 'writes_disabled');
  assert.equal(await srv.dataSnapshot(), before);
});

test('only_admins_turn_writes_on_and_the_change_is_audited', async () => {
  assertError(await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.readwrite,
    json: { enabled: true, reason: 'me' } }), 403, 'forbidden');
  const on = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin,
    json: { enabled: true, reason: 'release window' } });
  assert.equal(on.status, 200, on.text);
  assert.equal(on.json.enabled, true);
  assert.equal(on.json.default, false);
  assert.equal(on.json.updated_by, 'root-admin');
  const a = await srv.request('GET', '/api/v1/audit?limit=1', { token: srv.tokens.admin });
  assert.equal(a.json.items[0].kind, 'flag');
  assert.equal(a.json.items[0].flag, 'writes');
  assert.equal(a.json.items[0].queue, null);
  assert.equal(a.json.items[0].from, 0);
  assert.equal(a.json.items[0].to, 1);
  assert.equal(a.json.items[0].reason, 'release window');
  const ok = await putScaling(srv, 'alpha', { desired_concurrency: 6, reason: 'now allowed' });
  assert.equal(ok.status, 200, ok.text);
  const list = await srv.request('GET', '/api/v1/flags', { token: srv.tokens.admin });
  assert.equal(list.json.environment, 'production');
  assert.equal(list.json.items[0].enabled, true);
});

test('unknown_flag_is_404', async () => {
  assertError(await srv.request('PUT', '/api/v1/flags/turbo', { token: srv.tokens.admin,
    json: { enabled: true, reason: 'x' } }), 404, 'not_found');
});

test('login_sets_an_httponly_samesite_strict_cookie_and_returns_csrf', async () => {
  const { r, setCookie } = await login(srv.tokens.readwrite);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\//);
  assert.doesNotMatch(setCookie, /Secure/);
  assert.equal(r.json.name, 'ci-job');
  assert.deepEqual(r.json.scopes, ['scaling:read', 'scaling:write']);
  assert.match(r.json.csrf_token, /^[0-9a-f]{64}$/);
  const secure = await srv.request('POST', '/api/v1/session', { json: { token: srv.tokens.read },
    headers: { 'X-Forwarded-Proto': 'https' } });
  assert.match(secure.headers['set-cookie'][0], /; Secure/);
});

test('login_with_a_bad_token_is_401', async () => {
  assertError(await srv.request('POST', '/api/v1/session', { json: { token: 'nope' } }), 401, 'unauthenticated');
});

test('cookie_writes_need_the_csrf_token_and_same_site', async () => {
  const s = await login(srv.tokens.readwrite);
  const body = { desired_concurrency: 7, reason: 'from the browser' };
  assertError(await srv.request('PUT', '/api/v1/scaling/alpha', { cookie: s.cookie, json: body }), 403, 'csrf');
  assertError(await srv.request('PUT', '/api/v1/scaling/alpha', { cookie: s.cookie, csrf: 'f'.repeat(64), json: body }), 403, 'csrf');
  assertError(await srv.request('PUT', '/api/v1/scaling/alpha', { cookie: s.cookie, csrf: s.csrf, json: body,
    headers: { 'Sec-Fetch-Site': 'cross-site' } }), 403, 'csrf');
  const ok = await srv.request('PUT', '/api/v1/scaling/alpha', { cookie: s.cookie, csrf: s.csrf, json: body,
    headers: { 'Sec-Fetch-Site': 'same-origin' } });
  assert.equal(ok.status, 200, ok.text);
  const h = await srv.request('GET', '/api/v1/scaling/alpha/history?limit=1', { cookie: s.cookie });
  assert.equal(h.json.items[0].source, 'ui');
  assert.equal(h.json.items[0].actor, 'ci-job');
});

test('cross_site_login_is_refused', async () => {
  assertError(await srv.request('POST', '/api/v1/session', { json: { token: srv.tokens.read },
    headers: { 'Sec-Fetch-Site': 'cross-site' } }), 403, 'csrf');
});

test('logout_ends_the_session', async () => {
  const s = await login(srv.tokens.read);
  assert.equal((await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie })).status, 200);
  const out = await srv.request('DELETE', '/api/v1/session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(out.status, 200, out.text);
  assert.match(out.headers['set-cookie'][0], /Max-Age=0/);
  assertError(await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie }), 401, 'unauthenticated');
});

test('revoking_a_token_ends_its_sessions_and_its_bearer_use', async () => {
  const token = createToken(srv.dbUrl, 'temp-user', 'scaling:read');
  const s = await login(token);
  const id = token.split('_')[1];
  const rev = await srv.request('DELETE', `/api/v1/tokens/${id}`, { token: srv.tokens.admin });
  assert.equal(rev.status, 200, rev.text);
  assertError(await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie }), 401, 'unauthenticated');
  assertError(await srv.request('GET', '/api/v1/whoami', { token }), 401, 'unauthenticated');
});

test('tokens_made_through_the_api_work_once_shown_and_are_listed_without_secrets', async () => {
  const r = await srv.request('POST', '/api/v1/tokens', { token: srv.tokens.admin,
    json: { name: 'dash', scopes: ['scaling:read'], expires_in_s: 3600 } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.token, /^slc_[0-9a-f]{12}_[0-9a-f]{64}$/);
  const who = await srv.request('GET', '/api/v1/whoami', { token: r.json.token });
  assert.equal(who.json.name, 'dash');
  assertError(await putScaling(srv, 'alpha', { desired_concurrency: 5, reason: 'x' }, r.json.token), 403, 'forbidden');
  const list = await srv.request('GET', '/api/v1/tokens', { token: srv.tokens.admin });
  const row = list.json.items.find((t) => t.id === r.json.id);
  assert.equal(row.name, 'dash');
  assert.notEqual(row.expires_at, null);
  assert.ok(!list.text.includes(r.json.token.split('_')[2]), 'secret leaked in the list');
});

test('token_cli_lists_and_revokes', async () => {
  const token = createToken(srv.dbUrl, 'cli-made', 'scaling:read');
  const id = token.split('_')[1];
  const list = cli(['token', 'list', '--db', srv.dbUrl]);
  assert.equal(list.status, 0);
  assert.match(list.stdout, new RegExp(`${id}\\s+cli-made\\s+scaling:read\\s+never\\s+active`));
  assert.equal(cli(['token', 'revoke', id, '--db', srv.dbUrl]).status, 0);
  assert.match(cli(['token', 'list', '--db', srv.dbUrl]).stdout, new RegExp(`${id}.*revoked`));
  assert.equal(cli(['token', 'revoke', 'ffffffffffff', '--db', srv.dbUrl]).status, 1);
  const bad = cli(['token', 'create', '--db', srv.dbUrl, '--name', 'x', '--scopes', 'root']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown scope 'root'/);
});

test('behind_an_https_proxy_the_cookie_is_host_prefixed_and_secure_whatever_the_header_case', async () => {
  for (const proto of ['https', 'HTTPS', 'https, http', ' https']) {
    const r = await srv.request('POST', '/api/v1/session', { json: { token: srv.tokens.read },
      headers: { 'X-Forwarded-Proto': proto } });
    assert.equal(r.status, 200, r.text);
    const set = r.headers['set-cookie'][0];
    assert.match(set, /^__Host-sluice_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/, `${proto}: ${set}`);
    const cookie = /=([0-9a-f]{64});/.exec(set)[1];
    // The session works under its own name, over HTTPS only.
    const who = await srv.request('GET', '/api/v1/whoami', { headers: { Cookie: `__Host-sluice_session=${cookie}`,
      'X-Forwarded-Proto': 'https' } });
    assert.equal(who.status, 200, who.text);
    const plain = await srv.request('GET', '/api/v1/whoami', { headers: { Cookie: `__Host-sluice_session=${cookie}` } });
    assert.equal(plain.status, 401);
  }
  const http = await srv.request('POST', '/api/v1/session', { json: { token: srv.tokens.read },
    headers: { 'X-Forwarded-Proto': 'http' } });
  assert.match(http.headers['set-cookie'][0], /^sluice_session=/);
  assert.doesNotMatch(http.headers['set-cookie'][0], /Secure/);
});
