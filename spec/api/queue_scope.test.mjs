// queue_scope.test.mjs — tokens limited to queues (issue 18, item 1).
//
// A matrix of every route the scripts declare × a caller limited to queues,
// as a bearer token and as a cookie session made from it, on a queue in its
// patterns and one out of them: direct routes answer 403 forbidden, lists
// leave other queues out. Then two teams share one sluiced with real
// sluice-worker processes, and an event stream of one team never carries
// the other's queue names.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, createToken, cli, assertError, putScaling, ROOT } from './harness.mjs';
import { startRedis, startWorker, waitFor } from './fleet_harness.mjs';

const POLICY = `
defaults { default = 4, min = 1, max = 32, max_step = 20, confirm_above = 24, approve_above = 16 }
queue "build-a"  { }
queue "build-b"  { }
queue "ingest-a" { }
queue "ingest-b" { }
queue "shared-x" { }
autoscale "build-a"  { every_s = 60, dry_run = true, rule = function(q) return nil end }
autoscale "ingest-a" { every_s = 60, dry_run = true, rule = function(q) return nil end }
alert "odd_worker" {
  severity = "warning", for_s = 0,
  worker = function(w, q) return w.id:find("-odd$") ~= nil and w.concurrency ~= q.desired end,
}
`;
// Names the build team must never see anything of.
const FOREIGN = ['ingest-a', 'ingest-b', 'shared-x'];
const BUILD_QUEUES = ['build-a', 'build-b'];

let srv, redis, foreignApproval;
const tok = {};

// A change above approve_above asked for by root-admin: its approval id.
async function askApproval(queue) {
  const now = (await srv.request('GET', `/api/v1/scaling/${queue}`, { token: srv.tokens.admin })).json.desired_concurrency;
  const r = await putScaling(srv, queue, { desired_concurrency: now >= 17 ? now + 1 : 17, reason: `big ${queue}` });
  assert.equal(r.status, 202, r.text);
  return r.json.approval.id;
}
before(async () => {
  redis = await startRedis();
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--write-rate', '6000'] });
  // The build team's lead: every scope, but only build* — so what it is
  // refused is refused for the queue, never for a scope.
  tok.build = createToken(srv.dbUrl, 'build-lead', 'admin', ['--queues', 'build*']);
  tok.ingest = createToken(srv.dbUrl, 'ingest-ci', 'scaling:read,scaling:write', ['--queues', 'ingest*']);
  tok.buildA = createToken(srv.dbUrl, 'build-a-only', 'scaling:read,scaling:write', ['--queues', 'build-a']);
  // Something in the audit log of every kind: a change per queue, a flag.
  for (const q of ['build-a', 'ingest-a', 'shared-x']) {
    const r = await putScaling(srv, q, { desired_concurrency: 5, reason: `seed ${q}` });
    assert.equal(r.status, 200, r.text);
  }
  const f = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin,
    json: { enabled: true, reason: 'seed a flag entry' } });
  assert.equal(f.status, 200, f.text);
  // Another team's change waiting for a second person.
  foreignApproval = await askApproval('shared-x');
});
after(async () => { try { await srv?.cleanup(); } finally { await redis?.cleanup(); } });

async function login(token) {
  const r = await srv.request('POST', '/api/v1/session', { json: { token } });
  assert.equal(r.status, 200, r.text);
  return { cookie: /sluice_session=([0-9a-f]{64})/.exec(r.headers['set-cookie'][0])[1], csrf: r.json.csrf_token,
    body: r.json };
}

// The caller: the build lead's token, or a cookie session made from it.
async function as(via) {
  if (via === 'bearer') return { token: tok.build };
  const s = await login(tok.build);
  return { cookie: s.cookie, csrf: s.csrf };
}

function queuesOf(list) { return list.map((x) => x.queue).sort(); }

function assertNoForeign(text, where) {
  for (const q of FOREIGN) assert.ok(!text.includes(q), `${where} mentions ${q}: ${text.slice(0, 400)}`);
}

// Every route, with what "in" (a build queue) and "out" (another team's
// queue) mean for it. A route with a {queue} parameter needs no row: it is
// checked generically below, so a queue route added later is covered the
// day it is declared. Any other route must have a row here.
const ROWS = {
  'GET /healthz': { none: true },
  'GET /metrics': {
    // Scope none: the exposition is for Prometheus, not for a token, and is
    // the same whoever asks (docs/teams-scope.md).
    none: true,
    async check(c) {
      const r = await srv.request('GET', '/metrics', c);
      assert.equal(r.status, 200);
      for (const q of [...BUILD_QUEUES, ...FOREIGN]) assert.ok(r.text.includes(`queue="${q}"`), q);
    },
  },
  'GET /readyz': { none: true },
  'POST /api/v1/session': {
    async check() {
      const s = await login(tok.build);
      assert.deepEqual(s.body.queues, ['build*']);
    },
  },
  'DELETE /api/v1/session': {
    async check(c) {
      const r = await srv.request('DELETE', '/api/v1/session', c);
      assert.equal(r.status, 200, r.text);
    },
  },
  'GET /api/v1/whoami': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/whoami', c);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.queues, ['build*']);
      assert.equal(r.json.via, c.cookie ? 'session' : 'token');
    },
  },
  'GET /api/v1/scaling': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/scaling', c);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(queuesOf(r.json.items), BUILD_QUEUES);
      assertNoForeign(r.text, 'the scaling list');
    },
  },
  'GET /api/v1/audit': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/audit?limit=500', c);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.items.length >= 1, 'the build team sees its own entries');
      for (const e of r.json.items) assert.match(e.queue, /^build-/, JSON.stringify(e));
      assert.ok(!r.json.items.some((e) => e.kind === 'flag'), 'global entries are absent');
      assertNoForeign(r.text, 'the audit log');
      // A filter on a queue of its own works; on another team's, 403.
      const mine = await srv.request('GET', '/api/v1/audit?queue=build-a', c);
      assert.equal(mine.status, 200, mine.text);
      assert.ok(mine.json.items.every((e) => e.queue === 'build-a'));
      const theirs = await srv.request('GET', '/api/v1/audit?queue=ingest-a', c);
      assertError(theirs, 403, 'forbidden');
      assert.equal(theirs.json.error.details.queue, 'ingest-a');
    },
  },
  'GET /api/v1/policies': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/policies', c);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.queues.slice().sort(), BUILD_QUEUES);
      assertNoForeign(r.text, 'the policy status');
    },
  },
  'GET /api/v1/flags': {
    async check(c) {
      assert.equal((await srv.request('GET', '/api/v1/flags', c)).status, 200);
    },
  },
  'GET /api/v1/flags/{name}': {
    async check(c) {
      assert.equal((await srv.request('GET', '/api/v1/flags/writes', c)).status, 200);
    },
  },
  'PUT /api/v1/flags/{name}': {
    // A flag acts on every queue: refused to a token limited to some.
    async check(c) {
      const before = await srv.dataSnapshot();
      const r = await srv.request('PUT', '/api/v1/flags/writes', { ...c, json: { enabled: false, reason: 'mine' } });
      assertError(r, 403, 'forbidden');
      assert.match(r.json.error.message, /every queue/);
      assert.equal(await srv.dataSnapshot(), before);
    },
  },
  'GET /api/v1/tokens': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/tokens', c);
      assert.equal(r.status, 200, r.text);
      const names = r.json.items.map((t) => t.name);
      assert.ok(names.includes('build-lead') && names.includes('build-a-only'), names.join());
      assert.ok(!names.includes('root-admin') && !names.includes('ingest-ci'), names.join());
      for (const t of r.json.items) assert.ok(Array.isArray(t.queues), JSON.stringify(t));
    },
  },
  'POST /api/v1/tokens': {
    async check(c) {
      const made = await srv.request('POST', '/api/v1/tokens', { ...c,
        json: { name: 'build-bot', scopes: ['scaling:read'], queues: ['build-b'] } });
      assert.equal(made.status, 201, made.text);
      assert.deepEqual(made.json.queues, ['build-b']);
      // Every queue, or queues beyond its own: refused, nothing made.
      for (const queues of [undefined, ['ingest-a'], ['b*'], ['build-a', 'shared-x']]) {
        const before = await srv.dataSnapshot();
        const count = srv.sql('SELECT COUNT(*) FROM api_tokens');
        const r = await srv.request('POST', '/api/v1/tokens', { ...c,
          json: { name: 'too-wide', scopes: ['scaling:read'], ...(queues ? { queues } : {}) } });
        assertError(r, 403, 'forbidden');
        assert.equal(srv.sql('SELECT COUNT(*) FROM api_tokens'), count);
        assert.equal(await srv.dataSnapshot(), before);
      }
    },
  },
  'DELETE /api/v1/tokens/{id}': {
    async check(c) {
      const other = createToken(srv.dbUrl, 'not-theirs', 'scaling:read');
      const theirs = await srv.request('DELETE', `/api/v1/tokens/${other.split('_')[1]}`, c);
      assertError(theirs, 403, 'forbidden');
      assert.equal((await srv.request('GET', '/api/v1/whoami', { token: other })).status, 200);
      const own = createToken(srv.dbUrl, 'build-temp', 'scaling:read', ['--queues', 'build-a']);
      const r = await srv.request('DELETE', `/api/v1/tokens/${own.split('_')[1]}`, c);
      assert.equal(r.status, 200, r.text);
      assert.equal((await srv.request('GET', '/api/v1/whoami', { token: own })).status, 401);
    },
  },
  'GET /api/v1/approvals': {
    async check(c) {
      const own = await askApproval('build-a');
      try {
        const r = await srv.request('GET', '/api/v1/approvals', c);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.items.map((a) => a.id), [own]);
        assertNoForeign(r.text, 'the approvals');
      } finally {
        await srv.request('POST', `/api/v1/approvals/${own}/reject`, { token: srv.tokens.admin, json: { reason: 'withdrawn' } });
      }
    },
  },
  'GET /api/v1/approvals/{id}': {
    async check(c) {
      assertError(await srv.request('GET', `/api/v1/approvals/${foreignApproval}`, c), 403, 'forbidden');
      const own = await askApproval('build-a');
      try {
        const r = await srv.request('GET', `/api/v1/approvals/${own}`, c);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.queue, 'build-a');
      } finally {
        await srv.request('POST', `/api/v1/approvals/${own}/reject`, { token: srv.tokens.admin, json: { reason: 'withdrawn' } });
      }
    },
  },
  'POST /api/v1/approvals/{id}/approve': {
    async check(c) {
      const before = await srv.dataSnapshot();
      assertError(await srv.request('POST', `/api/v1/approvals/${foreignApproval}/approve`, { ...c, json: {} }), 403, 'forbidden');
      assert.equal(await srv.dataSnapshot(), before, 'a refused approval changed data');
      const own = await askApproval('build-b');
      const r = await srv.request('POST', `/api/v1/approvals/${own}/approve`, { ...c, json: { reason: 'looks right' } });
      assert.equal(r.status, 200, r.text);
      const t = await srv.request('GET', '/api/v1/scaling/build-b', c);
      assert.ok(t.json.desired_concurrency >= 17, t.text);
    },
  },
  'POST /api/v1/approvals/{id}/reject': {
    async check(c) {
      const before = await srv.dataSnapshot();
      assertError(await srv.request('POST', `/api/v1/approvals/${foreignApproval}/reject`, { ...c, json: { reason: 'not mine' } }),
        403, 'forbidden');
      assert.equal(await srv.dataSnapshot(), before, 'a refused rejection changed data');
      const own = await askApproval('build-b');
      const r = await srv.request('POST', `/api/v1/approvals/${own}/reject`, { ...c, json: { reason: 'too many' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.approval.status, 'rejected');
    },
  },
  'GET /api/v1/notifications': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/notifications', c);
      assert.equal(r.status, 200, r.text);
      assertNoForeign(r.text, 'the notifications');
    },
  },
  'GET /api/v1/autoscalers': {
    async check(c) {
      const r = await srv.request('GET', '/api/v1/autoscalers', c);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(queuesOf(r.json.items), ['build-a']);
      assertNoForeign(r.text, 'the autoscalers');
    },
  },
  'GET /admin/runtime-scaling': { snapshot: '/admin/runtime-scaling' },
  'GET /admin/event-health': { snapshot: '/admin/event-health' },
  'GET /admin/runtime-scaling/history': {
    async check(c) {
      const mine = await srv.request('GET', '/admin/runtime-scaling/history?queue=build-a&range=15m', c);
      assert.equal(mine.status, 200, mine.text);
      for (const q of FOREIGN) {
        const r = await srv.request('GET', `/admin/runtime-scaling/history?queue=${q}&range=15m`, c);
        assertError(r, 403, 'forbidden');
        assert.match(r.json.error.message, new RegExp(`'${q}' is out of these credentials' queues`));
      }
    },
  },
  'GET /admin/runtime-scaling/events': {
    async check(c) {
      const s = await openEvents(c);
      try {
        assert.equal(s.status, 200);
        assert.ok(await waitFor(() => s.events.length >= 1, 5000));
        assert.equal(s.events[0].type, 'snapshot');
        assert.deepEqual(queuesOf(s.events[0].data.queues), BUILD_QUEUES);
        assertNoForeign(s.text, 'the first event');
      } finally { s.close(); }
    },
  },
};

// What scripts/*.lua declare, read from the files themselves.
function declaredRoutes() {
  const dir = join(ROOT, 'scripts');
  const out = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.lua'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    for (const m of text.matchAll(/s\.route\("([A-Z]+)",\s*"([^"]+)"/g)) out.push(`${m[1]} ${m[2]}`);
  }
  return out;
}

const ROUTES = declaredRoutes();

test('the route table is read from the scripts and every route has a rule', () => {
  assert.ok(ROUTES.length >= 20, ROUTES.join());
  const missing = ROUTES.filter((r) => !ROWS[r] && !r.includes('{queue}'));
  assert.deepEqual(missing, [], 'a route that names no {queue} needs a row in ROWS');
  assert.deepEqual(Object.keys(ROWS).filter((r) => !ROUTES.includes(r)), [], 'a row for a route that is gone');
});

// A body a route with {queue} might take: the PUT of api.md, otherwise a
// reason (enough for the queue check, which runs before the body is read).
function bodyFor(method) {
  if (method === 'PUT') return { desired_concurrency: 6, reason: 'scope matrix' };
  if (method === 'POST' || method === 'PATCH') return { reason: 'scope matrix' };
  return undefined;
}

for (const route of ROUTES) {
  const [method, pattern] = route.split(' ');
  for (const via of ['bearer', 'cookie']) {
    if (pattern.includes('{queue}')) {
      test(`${route} as build* (${via}): another team's queue -> 403 forbidden, nothing changes`, async () => {
        const c = await as(via);
        for (const q of FOREIGN) {
          const before = await srv.dataSnapshot();
          const r = await srv.request(method, pattern.replace('{queue}', q), { ...c, json: bodyFor(method) });
          assertError(r, 403, 'forbidden');
          assert.equal(r.json.error.details.queue, q);
          assert.equal(r.json.error.details.queues, 'build*');
          assert.match(r.json.error.message, new RegExp(`queue '${q}' is out of these credentials' queues`));
          assert.equal(await srv.dataSnapshot(), before, 'a refused request changed data');
        }
      });
      test(`${route} as build* (${via}): its own queue is served`, async () => {
        const c = await as(via);
        const r = await srv.request(method, pattern.replace('{queue}', 'build-b'), { ...c, json: bodyFor(method) });
        assert.ok(!(r.status === 403 && r.json?.error?.code === 'forbidden'), `${r.status} ${r.text}`);
        assert.ok(r.status < 500, r.text);
        assertNoForeign(r.text, route);
      });
      continue;
    }
    const row = ROWS[route];
    if (!row) continue;                          // reported by the table test above
    test(`${route} as build* (${via}): ${row.none ? 'public, unchanged' : 'only its queues'}`, async () => {
      const c = await as(via);
      if (row.snapshot) {
        const r = await srv.request('GET', row.snapshot, c);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(queuesOf(r.json.queues), BUILD_QUEUES);
        assertNoForeign(r.text, row.snapshot);
        // The whole snapshot, with its ETag fast path, for a token of every queue.
        const all = await srv.request('GET', row.snapshot, { token: srv.tokens.admin });
        assert.deepEqual(queuesOf(all.json.queues), [...BUILD_QUEUES, ...FOREIGN].sort());
        const again = await srv.request('GET', row.snapshot, { token: srv.tokens.admin,
          headers: { 'If-None-Match': all.headers.etag } });
        assert.ok(again.status === 304 || again.status === 200, again.status);
        return;
      }
      if (row.check) return row.check(c);
      const r = await srv.request(method, pattern, c);
      assert.ok(r.status < 500, r.text);
    });
  }
}

test('a token limited to one name is limited to exactly it', async () => {
  const c = { token: tok.buildA };
  assert.equal((await srv.request('GET', '/api/v1/scaling/build-a', c)).status, 200);
  assertError(await srv.request('GET', '/api/v1/scaling/build-b', c), 403, 'forbidden');
  const list = await srv.request('GET', '/api/v1/scaling', c);
  assert.deepEqual(queuesOf(list.json.items), ['build-a']);
});

test('a long queue name out of scope, not ASCII, is refused in a well-formed answer', async () => {
  const name = 'a' + 'é'.repeat(100);                  // 201 bytes: the message cuts it
  const r = await srv.request('GET', `/api/v1/scaling/${encodeURIComponent(name)}`, { token: tok.build });
  assertError(r, 403, 'forbidden');
  assert.equal(r.json.error.details.queue, name);
  assert.ok(r.json.error.message.startsWith(`queue 'aé`), r.json.error.message);
  const bad = await srv.request('POST', '/api/v1/tokens', { token: srv.tokens.admin,
    json: { name: 'utf8', scopes: ['scaling:read'], queues: [name] } });
  assertError(bad, 400, 'invalid_field');
  assert.equal(bad.json.error.details.field, 'queues');
  assert.ok(bad.json.error.message.startsWith(`'aé`), bad.json.error.message);
});

test('token creation validates queues and says which field is wrong', async () => {
  const bad = [
    [[], /must not be empty/], ['build', /must be a list/], [[7], /must be strings/],
    [['a,b'], /'a,b' is not a queue pattern/], [['*'], /'\*' is not a queue pattern/],
    [['bad name'], /not a queue pattern/], [['x'.repeat(65)], /not a queue pattern/],
    [Array.from({ length: 17 }, (_, i) => `q${i}`), /at most 16/],
  ];
  for (const [queues, msg] of bad) {
    const count = srv.sql('SELECT COUNT(*) FROM api_tokens');
    const r = await srv.request('POST', '/api/v1/tokens', { token: srv.tokens.admin,
      json: { name: 'bad-queues', scopes: ['scaling:read'], queues } });
    assertError(r, 400, 'invalid_field');
    assert.equal(r.json.error.details.field, 'queues', r.text);
    assert.match(r.json.error.message, msg);
    assert.equal(srv.sql('SELECT COUNT(*) FROM api_tokens'), count);
  }
  // Canonical: sorted, once each; null (or absent) means every queue.
  const ok = await srv.request('POST', '/api/v1/tokens', { token: srv.tokens.admin,
    json: { name: 'canon', scopes: ['scaling:read'], queues: ['ingest*', 'build', 'ingest*'] } });
  assert.equal(ok.status, 201, ok.text);
  assert.deepEqual(ok.json.queues, ['build', 'ingest*']);
  const who = await srv.request('GET', '/api/v1/whoami', { token: ok.json.token });
  assert.deepEqual(who.json.queues, ['build', 'ingest*']);
  const all = await srv.request('POST', '/api/v1/tokens', { token: srv.tokens.admin,
    json: { name: 'every', scopes: ['scaling:read'], queues: null } });
  assert.equal(all.status, 201, all.text);
  assert.equal(all.json.queues, null);
  assert.equal((await srv.request('GET', '/api/v1/whoami', { token: all.json.token })).json.queues, null);
  const list = await srv.request('GET', '/api/v1/tokens', { token: srv.tokens.admin });
  assert.equal(list.json.items.find((t) => t.name === 'root-admin').queues, null);
  assert.deepEqual(list.json.items.find((t) => t.name === 'canon').queues, ['build', 'ingest*']);
});

test('sluiced token create --queues validates, and token list shows the patterns', () => {
  const r = cli(['token', 'create', '--db', srv.dbUrl, '--name', 'cli-bad', '--scopes', 'scaling:read',
    '--queues', 'build*,,x']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--queues: empty queue pattern/);
  const r2 = cli(['token', 'create', '--db', srv.dbUrl, '--name', 'cli-bad', '--scopes', 'scaling:read',
    '--queues', 'bad name']);
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /--queues: 'bad name' is not a queue pattern/);
  const list = cli(['token', 'list', '--db', srv.dbUrl]);
  assert.equal(list.status, 0);
  assert.match(list.stdout, /QUEUES/);
  assert.match(list.stdout, /build-lead .* active\s+build\*\n/);
  assert.match(list.stdout, /root-admin .* active\s+\*\n/);
});

test('a revoked or re-scoped token stops at once, cookie sessions included', async () => {
  const t = createToken(srv.dbUrl, 'short-team', 'scaling:read', ['--queues', 'build*']);
  const s = await login(t);
  assert.equal((await srv.request('GET', '/api/v1/scaling/build-a', { cookie: s.cookie })).status, 200);
  assertError(await srv.request('GET', '/api/v1/scaling/ingest-a', { cookie: s.cookie }), 403, 'forbidden');
  const r = await srv.request('DELETE', `/api/v1/tokens/${t.split('_')[1]}`, { token: srv.tokens.admin });
  assert.equal(r.status, 200);
  assertError(await srv.request('GET', '/api/v1/scaling/build-a', { cookie: s.cookie }), 401, 'unauthenticated');
});

// ---- event streams ----------------------------------------------------------------

function openEvents(c) {
  return new Promise((resolveP, reject) => {
    const headers = {};
    if (c.token) headers.Authorization = `Bearer ${c.token}`;
    if (c.cookie) headers.Cookie = `sluice_session=${c.cookie}`;
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/admin/runtime-scaling/events',
      headers, agent: false }, (res) => {
      const s = { status: res.statusCode, events: [], text: '', raw: '', close: () => req.destroy() };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        s.text += d;
        s.raw += d;
        let i;
        while ((i = s.raw.indexOf('\n\n')) >= 0) {
          const block = s.raw.slice(0, i);
          s.raw = s.raw.slice(i + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type) s.events.push({ type, data: JSON.parse(data) });
        }
      });
      resolveP(s);
    });
    req.on('error', reject);
    req.end();
  });
}

test('an event stream of a team never carries another queue, changes and snapshots alike', async () => {
  const mine = await openEvents({ token: tok.build });
  const cookieSession = await login(tok.build);
  const mineCookie = await openEvents({ cookie: cookieSession.cookie });
  const all = await openEvents({ token: srv.tokens.admin });
  try {
    assert.ok(await waitFor(() => mine.events.length && mineCookie.events.length && all.events.length, 5000));
    // Changes of every team, interleaved; the build team's last. Each to
    // a value it does not have yet, so each is a change.
    for (const q of ['ingest-a', 'shared-x', 'ingest-b', 'build-b']) {
      const now = (await srv.request('GET', `/api/v1/scaling/${q}`, { token: srv.tokens.admin })).json.desired_concurrency;
      const r = await putScaling(srv, q, { desired_concurrency: now === 10 ? 9 : 10, reason: `stream ${q}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.changed, true, r.text);
    }
    // An alert of each team: a worker that runs more than it is told.
    const c = redis.client();
    const beat = () => Promise.all(['build-a', 'ingest-a'].map((q) => c.publish('sluice:reports', JSON.stringify({
      event: 'heartbeat', worker: `${q}-odd`, queue: q, concurrency: 31, version: 0, interval_ms: 200 }))));
    const timer = setInterval(beat, 100);
    const sawAlert = (s, q) => s.events.some((e) => e.type === 'alert' && e.data.queue === q && e.data.state === 'firing');
    try {
      assert.ok(await waitFor(() => sawAlert(all, 'ingest-a') && sawAlert(all, 'build-a'), 6000), 'no alerts fired');
      assert.ok(await waitFor(() => sawAlert(mine, 'build-a') && sawAlert(mineCookie, 'build-a'), 3000));
      // The team's snapshot lists its alert (and never the other's: below).
      const listed = (st) => st.events.some((e) => e.type === 'snapshot' &&
        e.data.queues.find((q) => q.queue === 'build-a').alerts.some((a) => a.name === 'odd_worker'));
      assert.ok(await waitFor(() => listed(mine) && listed(all), 5000), 'no snapshot with the alert');
    } finally { clearInterval(timer); }
    const sawChange = (s, q) => s.events.some((e) => e.type === 'change' && e.data.queue === q);
    // The full stream sees them all, then a snapshot after the last...
    assert.ok(await waitFor(() => ['ingest-a', 'shared-x', 'ingest-b', 'build-b'].every((q) => sawChange(all, q)), 8000));
    const snapshotsAfter = (s) => {
      const at = s.events.findIndex((e) => e.type === 'change' && e.data.queue === 'build-b');
      return at >= 0 && s.events.slice(at).some((e) => e.type === 'snapshot');
    };
    assert.ok(await waitFor(() => snapshotsAfter(mine) && snapshotsAfter(mineCookie) && snapshotsAfter(all), 8000),
      `events: ${mine.events.map((e) => e.type)}`);
    // ...and the team's streams carry its own change and snapshots of its queues only.
    for (const s of [mine, mineCookie]) {
      assert.ok(sawChange(s, 'build-b'));
      assertNoForeign(s.text, 'a team stream');
      for (const e of s.events.filter((x) => x.type === 'snapshot')) assert.deepEqual(queuesOf(e.data.queues), BUILD_QUEUES);
      assert.ok(!s.events.some((e) => e.type === 'alert' && e.data.queue !== 'build-a'));
    }
    assert.ok(all.text.includes('ingest-a') && all.text.includes('shared-x'));
  } finally {
    mine.close();
    mineCookie.close();
    all.close();
  }
});

// ---- two teams, real workers ----------------------------------------------------------

test('two teams share one sluiced: each sees and changes only its queues, workers acknowledge', async () => {
  const workers = [startWorker(redis, 'build-a', ['--id', 'build-a-1']), startWorker(redis, 'ingest-a', ['--id', 'ingest-a-1'])];
  try {
    const live = async (token, q) => {
      const r = await srv.request('GET', '/admin/runtime-scaling', { token });
      return r.status === 200 && r.json.queues.find((x) => x.queue === q)?.worker_count === 1;
    };
    assert.ok(await waitFor(() => live(srv.tokens.admin, 'build-a'), 8000), 'build worker not seen');
    assert.ok(await waitFor(() => live(srv.tokens.admin, 'ingest-a'), 8000), 'ingest worker not seen');
    const desiredIn = async (q) => JSON.parse(await redis.client().hget('sluice:desired', q));
    const teams = [
      { token: tok.build, own: 'build-a', other: 'ingest-a', to: 12 },
      { token: tok.ingest, own: 'ingest-a', other: 'build-a', to: 13 },
    ];
    for (const t of teams) {
      // Its own queue: applied, and the real worker acknowledges it.
      const r = await putScaling(srv, t.own, { desired_concurrency: t.to, reason: 'team change', wait_ms: 5000 }, t.token);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.acks, { expected: 1, acknowledged: 1, complete: true });
      assert.equal((await desiredIn(t.own)).concurrency, t.to);
      // The other team's queue: refused, nothing published.
      const before = await desiredIn(t.other);
      const refused = await putScaling(srv, t.other, { desired_concurrency: 2, reason: 'not mine', wait_ms: 1000 }, t.token);
      assertError(refused, 403, 'forbidden');
      assert.deepEqual(await desiredIn(t.other), before);
      // What it lists: its own queues only, with its own worker.
      const list = await srv.request('GET', '/api/v1/scaling', { token: t.token });
      assert.ok(list.json.items.every((x) => x.queue.startsWith(t.own.split('-')[0])), list.text);
      const snap = await srv.request('GET', '/admin/runtime-scaling', { token: t.token });
      const q = snap.json.queues.find((x) => x.queue === t.own);
      assert.ok(q.workers.some((w) => w.id === `${t.own}-1`), snap.text);
      assert.ok(!snap.text.includes(`${t.other}-1`), 'another team\'s worker is listed');
      const audit = await srv.request('GET', '/api/v1/audit?limit=500', { token: t.token });
      assert.ok(audit.json.items.some((e) => e.queue === t.own && e.to === t.to));
      assert.ok(!audit.text.includes(t.other));
      // Its own history, not the other's.
      assert.equal((await srv.request('GET', `/api/v1/scaling/${t.own}/history`, { token: t.token })).status, 200);
      assertError(await srv.request('GET', `/api/v1/scaling/${t.other}/history`, { token: t.token }), 403, 'forbidden');
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a scoped audit page fills from several store pages and continues with next_before', async () => {
  // 30 changes of another team between two of the build team's.
  const tA = (await srv.request('GET', '/api/v1/scaling/build-b', { token: srv.tokens.admin })).json.desired_concurrency;
  await putScaling(srv, 'build-b', { desired_concurrency: tA === 8 ? 7 : 8, reason: 'page one' });
  for (let i = 0; i < 30; i++) {
    const r = await putScaling(srv, 'ingest-b', { desired_concurrency: 2 + (i % 2), reason: `noise ${i}` });
    assert.equal(r.status, 200, r.text);
  }
  await putScaling(srv, 'build-b', { desired_concurrency: 5, reason: 'page two' });
  const seen = [];
  let before = 0;
  for (let pages = 0; pages < 50; pages++) {
    const r = await srv.request('GET', `/api/v1/audit?limit=1${before ? `&before=${before}` : ''}`, { token: tok.build });
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.items);
    if (r.json.next_before === null) break;
    before = r.json.next_before;
  }
  const all = (await srv.request('GET', '/api/v1/audit?limit=500', { token: srv.tokens.admin })).json.items
    .filter((e) => typeof e.queue === 'string' && e.queue.startsWith('build-'));
  assert.deepEqual(seen.map((e) => e.id), all.map((e) => e.id));
});
