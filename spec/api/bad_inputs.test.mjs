// bad_inputs.test.mjs — a corpus of malformed requests. Each must get its
// documented status and error code, in the JSON envelope, and leave every
// target, audit entry and flag exactly as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './harness.mjs';

const PUT = ['PUT', '/api/v1/scaling/alpha'];
const ok = { desired_concurrency: 5, reason: 'fine' };
const j = (o) => JSON.stringify(o);
const withField = (k, v) => j({ ...ok, [k]: v });

// [name, method, path, body (string | Buffer | undefined), status, code, extra headers]
const CORPUS = [
  ['empty body', ...PUT, '', 400, 'invalid_json'],
  ['lone brace', ...PUT, '{', 400, 'invalid_json'],
  ['truncated object', ...PUT, '{"desired_concurrency": 5, "reason": "x"', 400, 'invalid_json'],
  ['truncated string', ...PUT, '{"desired_concurrency": 5, "reason": "x', 400, 'invalid_json'],
  ['array body', ...PUT, '[]', 400, 'invalid_json'],
  ['string body', ...PUT, '"five"', 400, 'invalid_json'],
  ['null body', ...PUT, 'null', 400, 'invalid_json'],
  ['number body', ...PUT, '5', 400, 'invalid_json'],
  ['trailing garbage', ...PUT, j(ok) + ' x', 400, 'invalid_json'],
  ['duplicate key', ...PUT, '{"desired_concurrency": 5, "desired_concurrency": 6, "reason": "x"}', 400, 'invalid_json'],
  ['NUL escape in a string', ...PUT, '{"desired_concurrency": 5, "reason": "a\\u0000b"}', 400, 'invalid_json'],
  ['invalid UTF-8 bytes', ...PUT, Buffer.concat([Buffer.from('{"desired_concurrency": 5, "reason": "'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]), 400, 'invalid_json'],
  ['lone surrogate escape', ...PUT, '{"desired_concurrency": 5, "reason": "\\ud800"}', 400, 'invalid_json'],
  ['byte order mark', ...PUT, '\ufeff' + j(ok), 400, 'invalid_json'],
  ['integer beyond 64 bits', ...PUT, '{"desired_concurrency": 99999999999999999999999, "reason": "x"}', 400, 'invalid_json'],
  ['deeply nested value', ...PUT, '{"x": ' + '['.repeat(5000) + ']'.repeat(5000) + '}', 400, 'invalid_json'],
  ['concurrency as string', ...PUT, withField('desired_concurrency', '5'), 400, 'invalid_field'],
  ['concurrency as float', ...PUT, '{"desired_concurrency": 5.5, "reason": "x"}', 400, 'invalid_field'],
  ['concurrency as 5.0', ...PUT, '{"desired_concurrency": 5.0, "reason": "x"}', 400, 'invalid_field'],
  ['concurrency in exponent form', ...PUT, '{"desired_concurrency": 1e1, "reason": "x"}', 400, 'invalid_field'],
  ['negative concurrency', ...PUT, withField('desired_concurrency', -1), 400, 'invalid_field'],
  ['concurrency true', ...PUT, withField('desired_concurrency', true), 400, 'invalid_field'],
  ['concurrency null', ...PUT, withField('desired_concurrency', null), 400, 'invalid_field'],
  ['concurrency missing', ...PUT, j({ reason: 'x' }), 400, 'invalid_field'],
  ['concurrency as object', ...PUT, withField('desired_concurrency', { n: 5 }), 400, 'invalid_field'],
  ['reason missing', ...PUT, j({ desired_concurrency: 5 }), 400, 'invalid_field'],
  ['reason empty', ...PUT, withField('reason', ''), 400, 'invalid_field'],
  ['reason blank', ...PUT, withField('reason', ' \t\n '), 400, 'invalid_field'],
  ['reason 501 characters', ...PUT, withField('reason', 'r'.repeat(501)), 400, 'invalid_field'],
  ['reason 10 KiB', ...PUT, withField('reason', 'x'.repeat(10240)), 400, 'invalid_field'],
  ['reason a number', ...PUT, withField('reason', 42), 400, 'invalid_field'],
  ['reason a list', ...PUT, withField('reason', ['a']), 400, 'invalid_field'],
  ['unknown field', ...PUT, withField('desired', 5), 400, 'invalid_field'],
  ['unknown field with a SQL name', ...PUT, withField("x'; DROP TABLE api_tokens;--", 1), 400, 'invalid_field'],
  ['confirm as string', ...PUT, withField('confirm', 'yes'), 400, 'invalid_field'],
  ['expected_version negative', ...PUT, withField('expected_version', -1), 400, 'invalid_field'],
  ['expected_version as string', ...PUT, withField('expected_version', '0'), 400, 'invalid_field'],
  ['duration_s zero', ...PUT, withField('duration_s', 0), 400, 'invalid_field'],
  ['duration_s beyond 30 days', ...PUT, withField('duration_s', 31 * 86400), 400, 'invalid_field'],
  ['duration_s float', ...PUT, withField('duration_s', 1.5), 400, 'invalid_field'],
  ['wait_ms above 30000', ...PUT, withField('wait_ms', 30001), 400, 'invalid_field'],
  ['wait_ms negative', ...PUT, withField('wait_ms', -5), 400, 'invalid_field'],
  ['1 MiB body', ...PUT, withField('reason', 'x'.repeat(1 << 20)), 413, 'body_too_large'],
  ['body just over the cap', ...PUT, 'x'.repeat(65537), 413, 'body_too_large'],
  ['unknown queue', 'PUT', '/api/v1/scaling/nope', j(ok), 404, 'unknown_queue'],
  ['SQL-looking queue name', 'PUT', "/api/v1/scaling/alpha'--", j(ok), 404, 'unknown_queue'],
  ['percent-encoded slash in queue', 'GET', '/api/v1/scaling/alpha%2Fx', undefined, 404, 'not_found'],
  ['history limit 0', 'GET', '/api/v1/scaling/alpha/history?limit=0', undefined, 400, 'invalid_field'],
  ['history limit 501', 'GET', '/api/v1/audit?limit=501', undefined, 400, 'invalid_field'],
  ['history limit text', 'GET', '/api/v1/audit?limit=ten', undefined, 400, 'invalid_field'],
  ['history before negative', 'GET', '/api/v1/audit?before=-1', undefined, 400, 'invalid_field'],
  ['history before huge', 'GET', '/api/v1/audit?before=99999999999999999999999', undefined, 400, 'invalid_field'],
  ['history of unknown queue', 'GET', '/api/v1/scaling/nope/history', undefined, 404, 'unknown_queue'],
  ['static dot-dot', 'GET', '/ui/../../etc/passwd', undefined, 404, 'not_found'],
  ['static encoded dot-dot', 'GET', '/ui/%2e%2e/%2e%2e/etc/passwd', undefined, 404, 'not_found'],
  ['static hidden file', 'GET', '/ui/.git/config', undefined, 404, 'not_found'],
  ['static missing file', 'GET', '/ui/nope.js', undefined, 404, 'not_found'],
  ['static write', 'POST', '/ui/index.html', '{}', 405, 'method_not_allowed'],
  ['wrong method on a route', 'POST', '/api/v1/scaling', j(ok), 405, 'method_not_allowed'],
  ['PATCH on a queue', 'PATCH', '/api/v1/scaling/alpha', j(ok), 405, 'method_not_allowed'],
  ['unknown route', 'GET', '/api/v2/scaling', undefined, 404, 'not_found'],
  ['flag enabled as string', 'PUT', '/api/v1/flags/writes', j({ enabled: 'true', reason: 'x' }), 400, 'invalid_field'],
  ['flag without reason', 'PUT', '/api/v1/flags/writes', j({ enabled: false }), 400, 'invalid_field'],
  ['unknown flag', 'PUT', '/api/v1/flags/turbo', j({ enabled: true, reason: 'x' }), 404, 'not_found'],
  ['token with an unknown scope', 'POST', '/api/v1/tokens', j({ name: 'x', scopes: ['root'] }), 400, 'invalid_field'],
  ['token with no scopes', 'POST', '/api/v1/tokens', j({ name: 'x', scopes: [] }), 400, 'invalid_field'],
  ['token name with a space', 'POST', '/api/v1/tokens', j({ name: 'a b', scopes: ['admin'] }), 400, 'invalid_field'],
  ['token expiry zero', 'POST', '/api/v1/tokens', j({ name: 'x', scopes: ['admin'], expires_in_s: 0 }), 400, 'invalid_field'],
  ['session token as number', 'POST', '/api/v1/session', j({ token: 5 }), 400, 'invalid_field'],
  ['revoke unknown token', 'DELETE', '/api/v1/tokens/nope', undefined, 404, 'not_found'],
  ['authorization not bearer', 'GET', '/api/v1/scaling', undefined, 401, 'unauthenticated', { Authorization: 'Basic YTpi' }],
];

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.cleanup(); });

test('the corpus has at least 40 bad inputs', () => {
  assert.ok(CORPUS.length >= 40, `${CORPUS.length}`);
});

for (const [name, method, path, body, status, code, headers] of CORPUS) {
  test(`${name}: ${method} ${path.slice(0, 50)} -> ${status} ${code}`, async () => {
    const before = await srv.dataSnapshot();
    const h = { Authorization: `Bearer ${srv.tokens.admin}`, 'Content-Type': 'application/json', ...(headers || {}) };
    const r = await srv.request(method, path, { headers: h, body });
    assertError(r, status, code);
    if (code === 'invalid_field') assert.equal(typeof r.json.error.details.field, 'string');
    assert.equal(await srv.dataSnapshot(), before, 'a bad request changed data');
  });
}

test('a_huge_but_valid_integer_is_refused_by_the_policy_and_only_audited', async () => {
  const before = JSON.parse(await srv.dataSnapshot());
  const r = await srv.request('PUT', '/api/v1/scaling/alpha', { token: srv.tokens.admin,
    body: '{"desired_concurrency": 9223372036854775807, "reason": "max int"}' });
  assertError(r, 422, 'out_of_bounds');
  const after = JSON.parse(await srv.dataSnapshot());
  assert.deepEqual(after.targets, before.targets);
  assert.equal(after.audit.items.length, before.audit.items.length + 1);
  assert.equal(after.audit.items[0].error_code, 'out_of_bounds');
});

test('errors_are_never_html', async () => {
  for (const path of ['/nope', '/ui/nope', '/api/v1/scaling/alpha/../../x']) {
    const r = await srv.request('GET', path);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.ok(!/<html/i.test(r.text));
  }
});
