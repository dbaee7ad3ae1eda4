// sluicectl_approvals.test.mjs — sluicectl's approvals, approve, reject and
// revert against a real sluiced, and `set` exiting 4 when the change waits
// for a second person.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startServer, BUILD, createToken } from './harness.mjs';

const CTL = join(BUILD, 'sluicectl');
const POLICY = `
defaults { default = 4, min = 1, max = 64, max_step = 32 }
queue "big"  { approve_above = 16 }
queue "nope" { approve_above = 16 }
queue "back" { approve_above = 16 }
`;

let srv;
const tok = {};
before(async () => {
  srv = await startServer({ policies: POLICY });
  tok.carol = createToken(srv.dbUrl, 'carol', 'scaling:read,scaling:write');
  tok.bob = createToken(srv.dbUrl, 'bob', 'scaling:read,scaling:write,scaling:approve');
});
after(async () => { await srv.cleanup(); });

function ctl(args, token) {
  const env = { ...process.env, SLUICE_URL: `http://127.0.0.1:${srv.port}`, SLUICE_TOKEN: token };
  return new Promise((resolveP) => {
    execFile(CTL, args, { env, timeout: 60000 },
      (err, stdout, stderr) => resolveP({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('set_above_approve_above_exits_4_with_the_approval_id_and_expiry', async () => {
  const r = await ctl(['set', 'big', '20', '--reason', 'peak'], tok.carol);
  assert.equal(r.code, 4, r.stderr);
  const m = r.stdout.match(/^big: 4 -> 20 waits for approval ([0-9a-f]{16}) \(until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\n$/);
  assert.ok(m, r.stdout);
  assert.match(r.stderr, new RegExp(`sluicectl approve ${m[1]}`));
  const json = await ctl(['--json', 'set', 'nope', '30', '--reason', 'peak'], tok.carol);
  assert.equal(json.code, 4);
  assert.equal(JSON.parse(json.stdout).approval.status, 'pending');
  // Nothing changed.
  const get = await ctl(['--json', 'get', 'big'], tok.carol);
  assert.equal(JSON.parse(get.stdout).version, 0);
});

test('approvals_lists_them_and_needs_scaling_approve', async () => {
  const r = await ctl(['approvals'], tok.bob);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^ID\s+STATUS\s+QUEUE\s+CHANGE\s+ASKED BY\s+EXPIRES\s+REASON$/);
  assert.ok(lines.some((l) => /^[0-9a-f]{16} +pending +big +4->20 +carol +.*UTC +peak$/.test(l)), r.stdout);
  assert.equal((await ctl(['approvals'], tok.carol)).code, 2);
  const bad = await ctl(['approvals', '--status', 'maybe'], tok.bob);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--status: 'maybe' is not one of/);
  const all = await ctl(['--json', 'approvals', '--status', 'all'], tok.bob);
  assert.equal(JSON.parse(all.stdout).items.length, 2);
});

test('approve_and_reject_exit_codes', async () => {
  const items = JSON.parse((await ctl(['--json', 'approvals'], tok.bob)).stdout).items;
  const big = items.find((a) => a.queue === 'big');
  const nope = items.find((a) => a.queue === 'nope');
  const self = await ctl(['approve', big.id], tok.carol);
  assert.equal(self.code, 2);
  const ok = await ctl(['approve', big.id, '--reason', 'fine'], tok.bob);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `approved ${big.id}: big 4 -> 20, applied (version 1)\n`);
  const twice = await ctl(['approve', big.id], tok.bob);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /409 approval_decided/);
  const noReason = await ctl(['reject', nope.id], tok.bob);
  assert.equal(noReason.code, 1);
  assert.match(noReason.stderr, /reject needs --reason/);
  const rej = await ctl(['reject', nope.id, '--reason', 'not now'], tok.bob);
  assert.equal(rej.code, 0, rej.stderr);
  assert.equal(rej.stdout, `rejected ${nope.id}: nope 4 -> 30\n`);
  const badId = await ctl(['approve', 'xyz'], tok.bob);
  assert.equal(badId.code, 1);
  assert.match(badId.stderr, /needs an approval ID/);
  assert.equal((await ctl(['approve', '0123456789abcdef'], tok.bob)).code, 2);
});

test('revert_applies_an_older_value_and_exits_4_above_approve_above', async () => {
  assert.equal((await ctl(['set', 'back', '8', '--reason', 'v1'], tok.carol)).code, 0);
  assert.equal((await ctl(['set', 'back', '12', '--reason', 'v2'], tok.carol)).code, 0);
  const r = await ctl(['revert', 'back', '1', '--reason', 'calm again'], tok.carol);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'back: 12 -> 8 (version 3)\n');
  const unknown = await ctl(['revert', 'back', '99', '--reason', 'x'], tok.carol);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /404 unknown_version/);
  const usage = await ctl(['revert', 'back', '0', '--reason', 'x'], tok.carol);
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /VERSION must be a whole number, 1 or more/);
  assert.equal((await ctl(['revert', 'back', '1'], tok.carol)).code, 1);
  // big's version 1 is 20, above approve_above: the revert waits.
  assert.equal((await ctl(['set', 'big', '10', '--reason', 'down'], tok.carol)).code, 0);
  const waits = await ctl(['revert', 'big', '1', '--reason', 'up again'], tok.carol);
  assert.equal(waits.code, 4, waits.stderr);
  assert.match(waits.stdout, /^big: 10 -> 20 waits for approval [0-9a-f]{16}/);
});
