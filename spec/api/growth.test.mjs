// growth.test.mjs — what one credential can make the database grow by is
// bounded: a change to the current value writes and announces nothing,
// writes are rate-limited per token (refusals not audited), sessions are
// capped per token and expired ones swept, and the audit log shrinks only
// through `sluiced audit prune`, which audits itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { startServer, putScaling, assertError, createToken, cli, waitFor, sleep, BACKEND } from './harness.mjs';

const count = (srv, sql) => Number(srv.sql(sql));
const auditRows = (srv) => count(srv, 'SELECT COUNT(*) FROM scaling_audit');

// The database's own answer to a statement that must fail: its error text.
function refusal(srv, sql) {
  const [cmd, args] = BACKEND === 'postgres' ? ['psql', [srv.dbUrl, '-v', 'ON_ERROR_STOP=1', '-c', sql]] : ['sqlite3', [srv.db, sql]];
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (e) {
    return e.stderr;
  }
  assert.fail(`the database accepted: ${sql}`);
}

function openEvents(srv, token) {
  return new Promise((resolveP, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/admin/runtime-scaling/events',
      headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const stream = { req, status: res.statusCode, events: [], raw: '' };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        stream.raw += d;
        let i;
        while ((i = stream.raw.indexOf('\n\n')) >= 0) {
          const block = stream.raw.slice(0, i);
          stream.raw = stream.raw.slice(i + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type) stream.events.push({ type, data: JSON.parse(data) });
        }
      });
      resolveP(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

async function login(srv, token) {
  const r = await srv.request('POST', '/api/v1/session', { json: { token } });
  assert.equal(r.status, 200, r.text);
  return { cookie: /sluice_session=([0-9a-f]{64});/.exec(r.headers['set-cookie'][0])[1], csrf: r.json.csrf_token };
}

test('two_hundred_no_op_puts_write_nothing_announce_nothing_and_answer_changed_false', async () => {
  const srv = await startServer({ extraArgs: ['--write-rate', '0'] });
  const events = await openEvents(srv, srv.tokens.read);
  try {
    const first = await putScaling(srv, 'alpha', { desired_concurrency: 9, reason: 'a real change' });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.changed, true);
    assert.ok(await waitFor(() => events.events.some((e) => e.type === 'change'), 3000), 'no change event');
    const audit = auditRows(srv), outbox = count(srv, 'SELECT COUNT(*) FROM scaling_outbox');
    const reason = 'x'.repeat(500);
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 },
        () => putScaling(srv, 'alpha', { desired_concurrency: 9, reason })));
      for (const r of answers) {
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.changed, false);
        assert.equal(r.json.audit_id, null);
        assert.equal(r.json.version, 1);
        assert.equal(r.json.previous, 9);
        assert.equal(r.json.reason, 'a real change');
      }
    }
    // wait_ms on a no-op waits for the current version (no worker: at once).
    const w = await putScaling(srv, 'alpha', { desired_concurrency: 9, reason, wait_ms: 2000 });
    assert.equal(w.status, 200, w.text);
    assert.deepEqual(w.json.acks, { expected: 0, acknowledged: 0, complete: true });
    assert.equal(auditRows(srv), audit);
    assert.equal(count(srv, 'SELECT COUNT(*) FROM scaling_outbox'), outbox);
    await sleep(300);                                        // anything announced has arrived
    assert.equal(events.events.filter((e) => e.type === 'change').length, 1);
    const m = (await srv.request('GET', '/metrics')).text;
    assert.match(m, /^sluice_scaling_changes_total\{queue="alpha",outcome="unchanged"\} 201$/m);
    assert.match(m, /^sluice_scaling_changes_total\{queue="alpha",outcome="applied"\} 1$/m);
  } finally {
    events.req.destroy();
    await srv.cleanup();
  }
});

test('a_token_over_its_write_rate_gets_429_with_retry_after_nothing_audited_and_others_write_on', async () => {
  const srv = await startServer({ extraArgs: ['--write-rate', '60', '--write-burst', '5'] });
  try {
    const mine = srv.tokens.readwrite;
    for (let i = 0; i < 5; i++) {
      const r = await putScaling(srv, 'alpha', { desired_concurrency: 5 + (i % 2), reason: `burst ${i}` }, mine);
      assert.equal(r.status, 200, r.text);
    }
    const audit = auditRows(srv);
    const refusals = [
      await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'one too many' }, mine),
      await putScaling(srv, 'alpha', { desired_concurrency: 500, reason: 'out of bounds too' }, mine),
      await putScaling(srv, 'no-such-queue', { desired_concurrency: 5, reason: 'made up' }, mine),
    ];
    for (const r of refusals) {
      assertError(r, 429, 'rate_limited');
      assert.equal(r.json.error.details.limit, 'token');
      assert.equal(r.json.error.details.writes_per_minute, 60);
      assert.equal(r.json.error.details.burst, 5);
      assert.equal(r.headers['retry-after'], String(r.json.error.details.retry_after_s));
      assert.ok(Number(r.headers['retry-after']) >= 1 && Number(r.headers['retry-after']) <= 2, r.headers['retry-after']);
    }
    // A browser session writes as its token: refused too.
    const s = await login(srv, mine);
    const viaCookie = await srv.request('PUT', '/api/v1/scaling/beta', { cookie: s.cookie, csrf: s.csrf,
      json: { desired_concurrency: 5, reason: 'from the browser' } });
    assertError(viaCookie, 429, 'rate_limited');
    assert.equal(auditRows(srv), audit, 'a refusal for the token rate was audited');
    // Another token is not affected.
    const other = await putScaling(srv, 'beta', { desired_concurrency: 6, reason: 'someone else' }, srv.tokens.write);
    assert.equal(other.status, 200, other.text);
    // After Retry-After, the token writes again.
    await sleep(Number(refusals[0].headers['retry-after']) * 1000 + 100);
    const again = await putScaling(srv, 'alpha', { desired_concurrency: 7, reason: 'later' }, mine);
    assert.equal(again.status, 200, again.text);
    const m = (await srv.request('GET', '/metrics')).text;
    assert.match(m, /^sluice_scaling_changes_total\{queue="alpha",outcome="throttled"\} 2$/m);
    assert.match(m, /^sluice_scaling_changes_total\{queue="beta",outcome="throttled"\} 1$/m);
    assert.doesNotMatch(m, /no-such-queue/);
  } finally {
    await srv.cleanup();
  }
});

test('one_session_too_many_ends_the_oldest_of_that_token_and_its_cookie_stops_working', async () => {
  const srv = await startServer({ extraArgs: ['--max-sessions-per-token', '3'] });
  try {
    const other = await login(srv, srv.tokens.admin);
    const sessions = [];
    for (let i = 0; i < 5; i++) sessions.push(await login(srv, srv.tokens.read));
    const who = (s) => srv.request('GET', '/api/v1/whoami', { cookie: s.cookie });
    for (const s of sessions.slice(0, 2)) assertError(await who(s), 401, 'unauthenticated');
    for (const s of sessions.slice(2)) assert.equal((await who(s)).status, 200);
    assert.equal((await who(other)).status, 200);
    const id = srv.tokens.read.split('_')[1];
    assert.equal(count(srv, `SELECT COUNT(*) FROM api_sessions WHERE token_id = '${id}'`), 3);
  } finally {
    await srv.cleanup();
  }
});

test('expired_sessions_are_deleted_by_the_sweep_without_another_login', async () => {
  const srv = await startServer({ extraArgs: ['--session-sweep-s', '1'] });
  try {
    const shortLived = createToken(srv.dbUrl, 'short-lived', 'scaling:read', ['--expires-in', '2s']);
    await login(srv, shortLived);                 // the session ends with its token, in 2 s
    await login(srv, srv.tokens.read);            // 12 h
    assert.equal(count(srv, 'SELECT COUNT(*) FROM api_sessions'), 2);
    const id = shortLived.split('_')[1];
    assert.ok(await waitFor(() => count(srv, `SELECT COUNT(*) FROM api_sessions WHERE token_id = '${id}'`) === 0, 6000),
      'the expired session is still stored');
    assert.equal(count(srv, 'SELECT COUNT(*) FROM api_sessions'), 1);
  } finally {
    await srv.cleanup();
  }
});

test('audit_export_prints_the_log_as_json_lines_oldest_first', async () => {
  const srv = await startServer();
  try {
    for (const n of [5, 6, 7]) assert.equal((await putScaling(srv, 'alpha', { desired_concurrency: n, reason: `line\n${n}` })).status, 200);
    assertError(await putScaling(srv, 'alpha', { desired_concurrency: 500, reason: 'refused' }), 422, 'out_of_bounds');
    const api = (await srv.request('GET', '/api/v1/audit?limit=500', { token: srv.tokens.admin })).json.items;
    const r = cli(['audit', 'export', '--db', srv.dbUrl]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 4);
    assert.deepEqual(lines.map((l) => JSON.parse(l)), [...api].reverse());
    const before = cli(['audit', 'export', '--before', String(api[1].id), '--db', srv.dbUrl]);
    assert.equal(before.status, 0, before.stderr);
    assert.deepEqual(before.stdout.trim().split('\n').map((l) => JSON.parse(l).id), [api[3].id, api[2].id]);
    const byTime = cli(['audit', 'export', '--before-time', '2000-01-01T00:00:00Z', '--db', srv.dbUrl]);
    assert.equal(byTime.status, 0, byTime.stderr);
    assert.equal(byTime.stdout, '');
    assert.equal(cli(['audit', 'export', '--before', 'x', '--db', srv.dbUrl]).status, 2);
    assert.equal(cli(['audit', 'export', '--before-time', 'yesterday', '--db', srv.dbUrl]).status, 2);
    assert.equal(cli(['audit', 'export', '--before', '3', '--before-time', '2000-01-01T00:00:00Z', '--db', srv.dbUrl]).status, 2);
  } finally {
    await srv.cleanup();
  }
});

test('audit_prune_deletes_older_entries_audits_itself_and_nothing_else_may_delete', async () => {
  const srv = await startServer();
  try {
    const day = 86400e3, old = Date.now() - 3 * day;
    for (let i = 0; i < 3; i++) {
      srv.sql(`INSERT INTO scaling_audit (kind, subject, from_value, to_value, version, actor, source, reason,
               outcome, at, request_id) VALUES ('scaling', 'alpha', 4, 5, 1, 'old', 'api', 'long ago', 'applied',
               ${old + i * 1000}, 'old-${i}')`);
    }
    for (const n of [5, 6]) assert.equal((await putScaling(srv, 'beta', { desired_concurrency: n, reason: `fresh ${n}` })).status, 200);
    const rows = auditRows(srv);
    assert.equal(rows, 5);
    const firstFresh = count(srv, "SELECT MIN(id) FROM scaling_audit WHERE reason LIKE 'fresh%'");

    // Without a reason, or with entries of the last day in range: refused, nothing deleted.
    assert.equal(cli(['audit', 'prune', '--before', String(firstFresh), '--db', srv.dbUrl]).status, 2);
    const young = cli(['audit', 'prune', '--before', String(firstFresh + 2), '--reason', 'too eager', '--db', srv.dbUrl]);
    assert.equal(young.status, 1);
    assert.match(young.stderr, /last 24 hours/);
    assert.equal(auditRows(srv), rows);

    const bound = new Date(Date.now() - 2 * day).toISOString();
    const r = cli(['audit', 'prune', '--before-time', bound, '--reason', 'keep two days', '--actor', 'ops', '--db', srv.dbUrl]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^pruned 3 audit entries below id ${firstFresh}; audit entry \\d+ records it\\n$`));
    const items = (await srv.request('GET', '/api/v1/audit?limit=500', { token: srv.tokens.admin })).json.items;
    assert.deepEqual(items.map((e) => e.reason), ['keep two days', 'fresh 6', 'fresh 5']);
    const entry = items[0];
    assert.deepEqual({ ...entry, id: undefined, at: undefined, request_id: undefined }, {
      id: undefined, kind: 'audit', queue: null, action: 'prune', deleted: 3, before_id: firstFresh,
      from: 3, to: firstFresh, version: 0, actor: 'ops', source: 'cli', reason: 'keep two days',
      outcome: 'applied', error_code: null, at: undefined, request_id: undefined,
      from_version: null, approval_id: null });
    assert.match(entry.request_id, /^prune-[0-9a-f]{16}$/);
    assert.ok(entry.id > firstFresh + 1);
    // The queue's own history has no prune entries.
    const h = (await srv.request('GET', '/api/v1/scaling/beta/history', { token: srv.tokens.read })).json.items;
    assert.equal(h.length, 2);

    // The database still refuses every other delete, and updates.
    assert.match(refusal(srv, 'DELETE FROM scaling_audit'), /append-only/);
    assert.match(refusal(srv, `DELETE FROM scaling_audit WHERE id = ${entry.id}`), /append-only/);
    assert.match(refusal(srv, "UPDATE scaling_audit SET reason = 'x'"), /append-only/);
    if (BACKEND === 'postgres') assert.match(refusal(srv, 'TRUNCATE scaling_audit'), /append-only/);
    assert.equal(auditRows(srv), 3);
    assert.equal(count(srv, 'SELECT COUNT(*) FROM audit_prune_permit'), 0);
  } finally {
    await srv.cleanup();
  }
});
