// reads.test.mjs — reads served from the queue-health model's cached bytes
// (issue 16): a strong ETag that stays while the content does, 304 for a
// client that has it, read-your-writes after a change, worker reports in
// the snapshot within HEALTH_FRESH_MS (50 ms), and cached credentials that
// a revocation or a logout through sluiced ends at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, putScaling, assertError, createToken, cli, sleep } from './harness.mjs';
import { startRedis } from './fleet_harness.mjs';

let redis;
let srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ extraArgs: ['--redis', redis.url] });
});
after(async () => {
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

const get = (path, headers = {}, token = srv.tokens.read) => srv.request('GET', path, { token, headers });
const ETAG = /^"[0-9a-f]{32}"$/;

test('every_cached_read_carries_a_strong_etag', async () => {
  for (const path of ['/api/v1/scaling', '/api/v1/scaling/alpha', '/admin/runtime-scaling',
    '/admin/event-health', '/metrics']) {
    const r = await get(path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.match(r.headers.etag, ETAG, path);
  }
});

test('an_unchanged_target_keeps_its_etag_across_models', async () => {
  const first = await get('/api/v1/scaling/beta');
  const list = await get('/api/v1/scaling');
  await sleep(1200);                       // the ticker published at least one new model
  const again = await get('/api/v1/scaling/beta');
  assert.equal(again.headers.etag, first.headers.etag);
  assert.equal(again.text, first.text);
  assert.equal((await get('/api/v1/scaling')).headers.etag, list.headers.etag);
});

test('if_none_match_with_the_current_etag_answers_304_without_a_body', async () => {
  for (const path of ['/api/v1/scaling', '/api/v1/scaling/alpha', '/admin/runtime-scaling']) {
    const r = await get(path);
    const tag = r.headers.etag;
    for (const inm of [tag, `W/${tag}`, `"nope", ${tag}`, '*']) {
      const nm = await get(path, { 'If-None-Match': inm });
      // The snapshot carries generated_at: a new model may have come meanwhile.
      if (path === '/admin/runtime-scaling' && nm.status === 200) continue;
      assert.equal(nm.status, 304, `${path} with ${inm}: ${nm.status}`);
      assert.equal(nm.text, '');
      assert.equal(nm.headers.etag, tag);
    }
    const other = await get(path, { 'If-None-Match': '"0123456789abcdef0123456789abcdef"' });
    assert.equal(other.status, 200);
    assert.equal(other.text.length > 0, true);
  }
});

test('a_304_still_needs_credentials', async () => {
  const tag = (await get('/api/v1/scaling')).headers.etag;
  const r = await srv.request('GET', '/api/v1/scaling', { headers: { 'If-None-Match': tag } });
  assertError(r, 401, 'unauthenticated');
});

test('a_put_then_gets_at_once_show_the_new_version_with_a_new_etag', async () => {
  for (let i = 0; i < 5; i++) {
    const before = await get('/api/v1/scaling/alpha');
    const listBefore = await get('/api/v1/scaling');
    const put = await putScaling(srv, 'alpha', { desired_concurrency: 5 + (i % 2), reason: `read your writes ${i}` });
    assert.equal(put.status, 200, put.text);
    const [one, list, snap] = await Promise.all([get('/api/v1/scaling/alpha'), get('/api/v1/scaling'),
      get('/admin/runtime-scaling')]);
    assert.equal(one.json.version, put.json.version);
    assert.equal(one.json.desired_concurrency, put.json.desired_concurrency);
    assert.equal(list.json.items.find((q) => q.queue === 'alpha').version, put.json.version);
    assert.equal(snap.json.queues.find((q) => q.queue === 'alpha').version, put.json.version);
    assert.notEqual(one.headers.etag, before.headers.etag);
    assert.notEqual(list.headers.etag, listBefore.headers.etag);
    // The old ETag no longer matches: the client gets the new body.
    const stale = await get('/api/v1/scaling/alpha', { 'If-None-Match': before.headers.etag });
    assert.equal(stale.status, 200);
    assert.equal(stale.json.version, put.json.version);
  }
});

test('the_cached_bodies_equal_what_the_lua_tables_render', async () => {
  // sluice.scaling.get (a table) and get_body (the cached bytes) answer the
  // same JSON; the nudge example of lua-api.md relies on the table.
  const one = await get('/api/v1/scaling/beta');
  const list = await get('/api/v1/scaling');
  assert.deepEqual(list.json.items.find((q) => q.queue === 'beta'), one.json);
  assertError(await get('/api/v1/scaling/no-such-queue'), 404, 'unknown_queue');
});

test('a_worker_report_shows_in_the_snapshot_within_the_documented_bound', async () => {
  const c = redis.client();
  for (let i = 0; i < 3; i++) {
    const id = `fresh-${i}`;
    await get('/admin/runtime-scaling');     // a model is current and cached
    await c.publish('sluice:reports', JSON.stringify({ event: 'heartbeat', worker: id, queue: 'beta',
      concurrency: 3 + i, version: 0, completed: 10 * i, failed: 0, interval_ms: 1000 }));
    await sleep(150);                        // HEALTH_FRESH_MS (50) and a margin for the subscriber
    const snap = (await get('/admin/runtime-scaling')).json;
    const w = snap.queues.find((q) => q.queue === 'beta').workers.find((x) => x.id === id);
    assert.ok(w, `${id} not in the snapshot`);
    assert.equal(w.concurrency, 3 + i);
    const metrics = (await srv.request('GET', '/metrics')).text;
    assert.match(metrics, /sluice_workers\{queue="beta"\} [1-9]/);
  }
});

async function login(token) {
  const r = await srv.request('POST', '/api/v1/session', { json: { token } });
  assert.equal(r.status, 200, r.text);
  return { cookie: /sluice_session=([0-9a-f]{64});/.exec(r.headers['set-cookie'][0])[1], csrf: r.json.csrf_token };
}

test('a_revoked_token_and_its_sessions_are_refused_at_once_though_they_were_cached', async () => {
  const token = createToken(srv.dbUrl, 'cached-user', 'scaling:read');
  const s = await login(token);
  for (let i = 0; i < 3; i++) {              // remembered by the cache now
    assert.equal((await get('/api/v1/whoami', {}, token)).status, 200);
    assert.equal((await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie })).status, 200);
  }
  const id = token.split('_')[1];
  const rev = await srv.request('DELETE', `/api/v1/tokens/${id}`, { token: srv.tokens.admin });
  assert.equal(rev.status, 200, rev.text);
  assertError(await get('/api/v1/whoami', {}, token), 401, 'unauthenticated');
  assertError(await get('/api/v1/scaling', {}, token), 401, 'unauthenticated');
  assertError(await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie }), 401, 'unauthenticated');
});

test('a_logged_out_session_is_refused_at_once_though_it_was_cached', async () => {
  const s = await login(srv.tokens.read);
  for (let i = 0; i < 3; i++) assert.equal((await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie })).status, 200);
  const out = await srv.request('DELETE', '/api/v1/session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(out.status, 200, out.text);
  assertError(await srv.request('GET', '/api/v1/whoami', { cookie: s.cookie }), 401, 'unauthenticated');
  // The token it was made from still works.
  assert.equal((await get('/api/v1/whoami')).status, 200);
});

test('a_revocation_made_by_another_process_takes_effect_within_a_second', async () => {
  const token = createToken(srv.dbUrl, 'cli-revoked', 'scaling:read');
  assert.equal((await get('/api/v1/whoami', {}, token)).status, 200);
  assert.equal(cli(['token', 'revoke', token.split('_')[1], '--db', srv.dbUrl]).status, 0);
  await sleep(1100);                         // AUTH_CACHE_TTL_MS and a margin
  assertError(await get('/api/v1/whoami', {}, token), 401, 'unauthenticated');
});

test('a_flag_change_shows_in_the_snapshot_at_once', async () => {
  for (const enabled of [false, true]) {
    const r = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin,
      json: { enabled, reason: 'reads test' } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await get('/admin/runtime-scaling')).json.writes_enabled, enabled);
  }
});
