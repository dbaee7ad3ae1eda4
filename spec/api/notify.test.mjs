// notify.test.mjs — webhook notifications against a real receiver on
// 127.0.0.1: changes and refusals reach a json sink signed with HMAC-SHA256,
// alert transitions reach an alertmanager sink, a slack sink gets text; a
// receiver that is down and then answers 500 sees retries with back-off
// (visible in GET /api/v1/notifications, and as an alert input), and once
// back gets every event exactly once; a restart of sluiced in the middle
// loses nothing; a follower replica delivers nothing (PostgreSQL).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, putScaling, assertError, cli, tempDir, BACKEND, waitFor, TEST_POLICY } from './harness.mjs';

const SECRET = 'receiver-shared-secret-0123456789';

// A receiver that records every request and answers by mode: 'ok' (204),
// 'error' (500) or down (closed: connection refused). Stops itself after
// two minutes whatever happens to the test.
async function startReceiver(port = 0) {
  const r = { requests: [], mode: 'ok', port, server: null };
  const handler = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const status = r.mode === 'ok' ? 204 : 500;
      r.requests.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status });
      res.writeHead(status).end();
    });
  };
  r.up = () => new Promise((resolveP) => {
    r.server = http.createServer(handler);
    r.server.listen(r.port, '127.0.0.1', () => { r.port = r.server.address().port; resolveP(); });
  });
  r.down = () => new Promise((resolveP) => {
    r.server.closeAllConnections();
    r.server.close(() => resolveP());
    r.server = null;
  });
  r.stop = async () => { clearTimeout(r.timer); if (r.server) await r.down(); };
  r.timer = setTimeout(() => { if (r.server) r.server.close(); }, 120000);
  r.timer.unref();
  await r.up();
  return r;
}

// Delivered requests (2xx) of a path, by event id.
const delivered = (recv, path) => recv.requests.filter((q) => q.path === path && q.status < 300);
const countById = (reqs) => reqs.reduce((m, q) => m.set(q.headers['x-sluice-event-id'], (m.get(q.headers['x-sluice-event-id']) || 0) + 1), new Map());

function verify(req) {
  const ts = req.headers['x-sluice-timestamp'];
  const expect = 'sha256=' + crypto.createHmac('sha256', SECRET).update(`${ts}.${req.body}`).digest('hex');
  return crypto.timingSafeEqual(Buffer.from(expect), Buffer.from(req.headers['x-sluice-signature'] || ''));
}

function policy(port) {
  const base = `http://127.0.0.1:${port}`;
  return TEST_POLICY + `
queue "alerty" { }
queue "down" { }
queue "solo" { }
notify "dead" { url = "http://127.0.0.1:1/never", events = { "change" }, format = "json", queues = { "solo" } }
notify "hooks" { url = "${base}/json", events = { "change", "refusal", "approval" }, format = "json",
                 secret_env = "SLUICE_NOTIFY_TEST", queues = { "alpha", "down", "be*" } }
notify "am" { url = "${base}/am", events = { "alert" }, format = "alertmanager", queues = { "alerty" } }
notify "chat" { url = "${base}/slack", events = { "change" }, format = "slack", queues = { "alpha", "solo" } }
alert "alerty_high" {
  severity = "warning", for_s = 0,
  queue = function(q) return q.queue == "alerty" and q.desired >= 10 end,
  message = function(q) return "alerty runs " .. q.desired end,
}
alert "notify_failing" {
  severity = "critical", for_s = 0,
  queue = function(q) return q.notify_failures > 0 end,
}
`;
}

let recv;
let srv;
before(async () => {
  recv = await startReceiver();
  srv = await startServer({ policies: policy(recv.port), envVars: { ...process.env, SLUICE_NOTIFY_TEST: SECRET } });
});
after(async () => {
  try { await srv?.cleanup(); } finally { await recv?.stop(); }
});

const list = async (query = '') => {
  const res = await srv.request('GET', `/api/v1/notifications${query}`, { token: srv.tokens.admin });
  assert.equal(res.status, 200, res.text);
  return res.json;
};

const alertsOf = async (queue) => {
  const snap = (await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read })).json;
  return snap.queues.find((q) => q.queue === queue).alerts;
};

test('a_change_and_a_refusal_reach_the_json_sink_signed_and_only_matching_sinks_get_them', async () => {
  const ok = await putScaling(srv, 'alpha', { desired_concurrency: 6, reason: 'notify me' });
  assert.equal(ok.status, 200, ok.text);
  const refused = await putScaling(srv, 'alpha', { desired_concurrency: 30, reason: 'too far' });
  assert.equal(refused.status, 422, refused.text);
  const reqs = await waitFor(() => { const d = delivered(recv, '/json'); return d.length >= 2 && d; }, 10000);
  assert.ok(reqs, `json sink got ${recv.requests.length} requests`);
  const [change, refusal] = reqs.map((q) => ({ q, body: JSON.parse(q.body) }));
  for (const { q } of [change, refusal]) {
    assert.ok(verify(q), 'signature verifies with the shared secret');
    assert.equal(q.headers['content-type'], 'application/json');
    assert.match(q.headers['user-agent'], /^sluiced\/\d/);
    assert.match(q.headers['x-sluice-timestamp'], /^\d{10}$/);
    assert.ok(Math.abs(Date.now() / 1000 - Number(q.headers['x-sluice-timestamp'])) < 60);
  }
  assert.equal(change.body.kind, 'change');
  assert.equal(change.q.headers['x-sluice-event'], 'change');
  assert.equal(change.body.queue, 'alpha');
  assert.equal(change.body.id, change.q.headers['x-sluice-event-id']);
  assert.equal(change.body.id, `audit-${change.body.audit.id}`);
  assert.deepEqual({ from: change.body.audit.from, to: change.body.audit.to, outcome: change.body.audit.outcome, reason: change.body.audit.reason },
    { from: 4, to: 6, outcome: 'applied', reason: 'notify me' });
  assert.equal(change.body.audit.actor, 'root-admin');
  assert.equal(refusal.body.kind, 'refusal');
  assert.equal(refusal.body.audit.outcome, 'rejected');
  assert.equal(refusal.body.audit.error_code, refused.json.error.code);
  // A body changed in transit no longer verifies.
  assert.equal(verify({ ...change.q, body: change.q.body.replace('notify me', 'notify you') }), false);

  // slack: the change of alpha as text, never the refusal (events) ...
  const chat = await waitFor(() => delivered(recv, '/slack')[0], 5000);
  assert.ok(chat);
  const text = JSON.parse(chat.body).text;
  assert.match(text, /^\[sluice\] change of alpha: 4 -> 6 .*by root-admin.*notify me/);
  assert.equal(chat.headers['x-sluice-signature'], undefined, 'no secret_env: unsigned');
  // ... and a queue outside a sink's list reaches none of them.
  assert.equal((await putScaling(srv, 'zero', { desired_concurrency: 3, reason: 'not for hooks' })).status, 200);
  const page = await waitFor(async () => { const l = await list(); return l.items.length >= 3 && l; }, 5000);
  assert.equal(page.items.filter((i) => i.queue === 'zero').length, 0);
  const hooks = page.sinks.find((s) => s.name === 'hooks');
  assert.deepEqual({ format: hooks.format, events: hooks.events, signed: hooks.signed, secret_env: hooks.secret_env, declared: hooks.declared },
    { format: 'json', events: ['change', 'refusal', 'approval'], signed: true, secret_env: 'SLUICE_NOTIFY_TEST', declared: true });
  assert.ok(!JSON.stringify(page).includes(SECRET), 'the secret is never shown');
  assert.ok(!srv.log.includes(SECRET), 'the secret is never logged');
});

test('an_alert_firing_and_resolving_reaches_the_alertmanager_sink_in_its_shape', async () => {
  assert.equal((await putScaling(srv, 'alerty', { desired_concurrency: 10, reason: 'fire' })).status, 200);
  const firing = await waitFor(() => delivered(recv, '/am')[0], 8000);
  assert.ok(firing, 'no alert reached the alertmanager sink');
  const [a] = JSON.parse(firing.body);
  assert.equal(firing.headers['x-sluice-event'], 'alert');
  assert.deepEqual(a.labels, { alertname: 'alerty_high', queue: 'alerty', severity: 'warning', source: 'sluice' });
  assert.equal(a.annotations.summary, 'alerty runs 10');
  assert.match(a.annotations.description, /alerty_high on queue alerty is firing/);
  assert.match(a.startsAt, /^\d{4}-\d\d-\d\dT.*Z$/);
  assert.equal(a.endsAt, undefined);
  assert.equal((await putScaling(srv, 'alerty', { desired_concurrency: 4, reason: 'calm' })).status, 200);
  const resolved = await waitFor(() => delivered(recv, '/am')[1], 8000);
  assert.ok(resolved);
  const [b] = JSON.parse(resolved.body);
  assert.equal(b.startsAt, a.startsAt);
  assert.ok(Date.parse(b.endsAt) >= Date.parse(b.startsAt));
  assert.notEqual(resolved.headers['x-sluice-event-id'], firing.headers['x-sluice-event-id']);
});

test('a_receiver_down_then_failing_gets_retries_with_back_off_then_every_event_once_in_order', async () => {
  await recv.down();
  const before = recv.requests.length;
  const made = [];
  for (const v of [5, 6, 7]) {
    const res = await putScaling(srv, 'beta', { desired_concurrency: v, reason: `while down ${v}` });
    assert.equal(res.status, 200, res.text);
    made.push(v);
  }
  // Connection refused: retried with growing waits, visible per row.
  const retrying = await waitFor(async () => {
    const l = await list('?sink=hooks&status=pending');
    const head = l.items.find((i) => i.queue === 'beta' && i.attempts >= 2);
    return head && { l, head };
  }, 10000, 200);
  assert.ok(retrying, 'no retries of the first pending row');
  const { head } = retrying;
  assert.match(head.last_error, /connect|refused/i);
  assert.equal(head.last_status, null);
  assert.ok(Date.parse(head.next_attempt_at) > Date.parse(head.last_attempt_at), 'a wait before the next attempt');
  // In order per sink: the rows behind the first wait for it.
  const behind = retrying.l.items.filter((i) => i.queue === 'beta' && i.id > head.id);
  assert.ok(behind.every((i) => i.attempts === 0), JSON.stringify(behind));
  const hooks = retrying.l.sinks.find((s) => s.name === 'hooks');
  assert.ok(hooks.failing >= 1 && hooks.pending >= 3);
  // The failures are an alert input (q.notify_failures).
  const alerted = await waitFor(async () => (await alertsOf('beta')).find((a) => a.name === 'notify_failing' && a.state === 'firing'), 8000, 200);
  assert.ok(alerted, 'notify_failing did not fire');
  const metrics = (await srv.request('GET', '/metrics', { token: srv.tokens.read })).text;
  assert.match(metrics, /sluice_notifications_failed_total\{sink="hooks"\} [1-9]/);

  // Up but answering 500: still retried, the status recorded.
  recv.mode = 'error';
  await recv.up();
  const five = await waitFor(async () => (await list('?sink=hooks&status=pending')).items.find((i) => i.last_status === 500), 20000, 200);
  assert.ok(five, 'no attempt answered 500');
  assert.match(five.last_error, /500/);

  // Back: every event delivered, each once, in the order made.
  recv.mode = 'ok';
  const done = await waitFor(async () => (await list('?sink=hooks&status=pending')).items.length === 0, 40000, 200);
  assert.ok(done, 'rows still pending');
  const got = delivered(recv, '/json').filter((q) => recv.requests.indexOf(q) >= before);
  const beta = got.map((q) => JSON.parse(q.body)).filter((b) => b.queue === 'beta');
  assert.deepEqual(beta.map((b) => b.audit.to), made, 'each change once, in order');
  for (const [id, n] of countById(got)) assert.equal(n, 1, `${id} delivered ${n} times`);
  const rows = (await list('?sink=hooks&limit=500')).items.filter((i) => i.queue === 'beta');
  assert.ok(rows.every((i) => i.status === 'delivered' && i.delivered_at && i.next_attempt_at === null));
  assert.match((await srv.request('GET', '/metrics', { token: srv.tokens.read })).text,
    /sluice_notifications_delivered_total\{sink="hooks"\} [1-9]/);
  // The alert input clears once nothing about beta is failing any more...
  // except rows given up, which count for 15 minutes: none here.
  assert.ok(await waitFor(async () => !(await alertsOf('beta')).some((a) => a.name === 'notify_failing'), 8000, 200),
    'notify_failing did not resolve');
});

test('a_restart_of_sluiced_with_undelivered_rows_loses_nothing', async () => {
  await recv.down();
  const before = recv.requests.length;
  assert.equal((await putScaling(srv, 'down', { desired_concurrency: 9, reason: 'before the restart' })).status, 200);
  assert.ok(await waitFor(async () => (await list('?sink=hooks&status=pending')).items.some((i) => i.queue === 'down'), 5000));
  await srv.stop();
  assert.equal(recv.requests.length, before);
  await srv.start();
  assert.equal((await putScaling(srv, 'down', { desired_concurrency: 10, reason: 'after the restart' })).status, 200);
  await recv.up();
  const got = await waitFor(() => {
    const d = delivered(recv, '/json').slice().filter((q) => JSON.parse(q.body).queue === 'down');
    return d.length >= 2 && d;
  }, 30000, 200);
  assert.ok(got, 'not both delivered');
  assert.deepEqual(got.map((q) => JSON.parse(q.body).audit.reason), ['before the restart', 'after the restart']);
  for (const [id, n] of countById(got)) assert.equal(n, 1, `${id} delivered ${n} times`);
});

test('a_sink_that_fails_holds_back_only_its_own_rows', async () => {
  for (const v of [5, 6, 7]) {
    assert.equal((await putScaling(srv, 'solo', { desired_concurrency: v, reason: `solo ${v}` })).status, 200);
  }
  const chat = await waitFor(() => {
    const d = delivered(recv, '/slack').filter((q) => JSON.parse(q.body).text.includes(' of solo:'));
    return d.length === 3 && d;
  }, 8000, 100);
  assert.ok(chat, 'the chat sink did not get the three changes');
  assert.deepEqual(chat.map((q) => JSON.parse(q.body).text.match(/-> (\d+)/)[1]), ['5', '6', '7']);
  const dead = (await list('?sink=dead')).items;
  assert.equal(dead.length, 3);
  assert.deepEqual(dead.map((i) => i.status), ['pending', 'pending', 'pending']);
  assert.ok(dead[2].attempts >= 1 && dead[1].attempts === 0 && dead[0].attempts === 0, JSON.stringify(dead));
});

test('a_reload_that_adds_a_sink_sends_it_later_events_only', async () => {
  const late = `notify "late" { url = "http://127.0.0.1:${recv.port}/late", events = { "change" }, format = "json", queues = { "zero" } }\n`;
  writeFileSync(join(srv.policyDir, 'test.lua'), policy(recv.port) + late);
  assert.ok(await waitFor(async () => (await list()).sinks.some((s) => s.name === 'late'), 5000), 'not reloaded');
  assert.equal((await putScaling(srv, 'zero', { desired_concurrency: 4, reason: 'after the reload' })).status, 200);
  const got = await waitFor(() => delivered(recv, '/late')[0], 8000, 100);
  assert.ok(got);
  assert.equal(JSON.parse(got.body).audit.reason, 'after the reload');
  assert.equal(delivered(recv, '/late').length, 1, 'the change of zero before the sink existed is not sent');
  writeFileSync(join(srv.policyDir, 'test.lua'), policy(recv.port));
  assert.ok(await waitFor(async () => (await list()).sinks.some((s) => s.name === 'late' && s.declared === false), 5000),
    'a removed sink with rows shows as undeclared');
});

test('the_notifications_route_is_admin_only_and_checks_its_arguments', async () => {
  assertError(await srv.request('GET', '/api/v1/notifications', { token: srv.tokens.readwrite }), 403, 'forbidden');
  assertError(await srv.request('GET', '/api/v1/notifications?status=lost', { token: srv.tokens.admin }), 400, 'invalid_field');
  assertError(await srv.request('GET', '/api/v1/notifications?limit=0', { token: srv.tokens.admin }), 400, 'invalid_field');
  assertError(await srv.request('GET', '/api/v1/notifications?sink=a%20b', { token: srv.tokens.admin }), 400, 'invalid_field');
  assertError(await srv.request('GET', '/api/v1/notifications?limt=5', { token: srv.tokens.admin }), 400, 'invalid_field');
  const one = await list('?limit=1&status=delivered&sink=hooks');
  assert.equal(one.items.length, 1);
  assert.equal(one.items[0].sink, 'hooks');
  assert.equal(one.items[0].status, 'delivered');
});

test('policy_check_reports_bad_sinks_with_file_and_line', () => {
  const cases = [
    ['notify "x" { url = "ftp://h/", events = { "change" }, format = "json" }', /url must be an http/],
    ['notify "x" { url = "http://h/", events = { "changes" }, format = "json" }', /unknown event 'changes'/],
    ['notify "x" { url = "http://h/", events = { "change" }, format = "xml" }', /format must be/],
    ['notify "x" { url = "http://h/", events = { "change" }, format = "json", secret_env = "1BAD" }', /secret_env must name/],
    ['notify "x" { url = "http://h/", events = { "change" }, format = "json", secret = "s" }', /unknown field 'secret'/],
    ['notify "x" { url = "http://h/", format = "json" }', /events must list/],
    ['notify "x" { url = "http://' + 'h'.repeat(1100) + '/", events = { "alert" }, format = "json" }', /url must be/],
    ['notify "x" { url = "http://h/", events = { "alert" }, format = "json", queues = { "a b" } }', /not a queue name/],
    ['notify "y" { url = "http://h/", events = { "alert" }, format = "json" }\nnotify "y" { url = "http://h/", events = { "alert" }, format = "json" }', /sinks\.lua:4: notify 'y' declared twice/],
  ];
  for (const [decl, re] of cases) {
    const dir = tempDir();
    const pol = join(dir, 'p');
    mkdirSync(pol);
    writeFileSync(join(pol, 'sinks.lua'), `queue "q" { default = 1, min = 1, max = 2 }\n\n${decl}\n`);
    const r = cli(['policy', 'check', pol]);
    assert.notEqual(r.status, 0, decl);
    const line = decl.includes('\n') ? 4 : 3;   // a duplicate is reported where it is declared again
    assert.match(r.stderr + r.stdout, new RegExp(`sinks\\.lua:${line}: notify '[xy]'`), `${decl}: ${r.stderr}`);
    assert.match(r.stderr + r.stdout, re, r.stderr);
    rmSync(dir, { recursive: true, force: true });
  }
  const dir = tempDir();
  try {
    mkdirSync(join(dir, 'p'));
    writeFileSync(join(dir, 'p', 'ok.lua'), `queue "q" { default = 1, min = 1, max = 2 }
notify "ok" { url = "https://hooks.example.com/x?y=1", events = { "alert", "change" }, format = "slack", queues = { "q", "team-*" } }`);
    assert.equal(cli(['policy', 'check', join(dir, 'p')]).status, 0);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a_follower_replica_does_not_deliver', { skip: BACKEND !== 'postgres' && 'PostgreSQL only' }, async () => {
  // The follower signs with a secret of its own: anything it sent would
  // not verify with the leader's.
  const second = await startServer({ shareWith: srv, policies: policy(recv.port),
    envVars: { ...process.env, SLUICE_NOTIFY_TEST: 'the-follower-secret' } });
  try {
    const leaderOf = async (s) => (await s.request('GET', '/admin/runtime-scaling', { token: s.tokens.read })).json.leader;
    assert.equal(await leaderOf(srv), true);
    assert.equal(await leaderOf(second), false);
    const before = recv.requests.length;
    const fresh = () => delivered(recv, '/json').filter((q) => recv.requests.indexOf(q) >= before);
    for (const [s, v] of [[second, 11], [srv, 12], [second, 13]]) {
      assert.equal((await putScaling(s, 'beta', { desired_concurrency: v, reason: `replica ${v}` })).status, 200);
    }
    assert.ok(await waitFor(() => fresh().length >= 3, 10000, 100), 'not delivered');
    // Absence needs a window: two of the follower's passes (one a second).
    await new Promise((r) => setTimeout(r, 2200));
    assert.deepEqual(fresh().map((q) => JSON.parse(q.body).audit.to), [11, 12, 13]);
    assert.ok(fresh().every(verify), 'every delivery came from the leader');
    const follower = await second.request('GET', '/metrics', { token: second.tokens.read });
    assert.doesNotMatch(follower.text, /sluice_notifications_(delivered|failed)_total\{/);
  } finally {
    await second.cleanup();
  }
});
