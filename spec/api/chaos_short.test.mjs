// chaos_short.test.mjs — each fault scenario of `make chaos`, briefly: the
// same invariants, fewer rounds (spec/chaos/scenarios.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SCENARIOS } from '../chaos/scenarios.mjs';
import { BACKEND } from './harness.mjs';

function holds(r) {
  assert.equal(r.lost, 0, `${r.name}: acknowledged changes missing from the audit log`);
  assert.equal(r.gaps, 0, `${r.name}: version gaps`);
  assert.equal(r.outOfOrder, 0, `${r.name}: publications out of order`);
  assert.equal(r.backwards, 0, `${r.name}: the hash went backwards`);
  assert.equal(r.hashEqualsDb, true, `${r.name}: Redis differs from the database at the end`);
  assert.ok(r.convergeMs.every(Number.isFinite), `${r.name}: did not converge after a fault`);
  assert.ok(r.changes > 0, `${r.name}: no change went through`);
}

test('kill_9_of_sluiced_during_a_change_stream_loses_nothing', async () => {
  holds(await SCENARIOS.killLoop({ rounds: 3, every: 300 }));
});

test('redis_restarted_empty_during_and_between_changes_converges', async () => {
  holds(await SCENARIOS.redisRestart({ rounds: 2, down: 200 }));
});

const pg = BACKEND !== 'postgres' && 'PostgreSQL only';

test('a_frozen_leader_during_a_change_stream_breaks_no_invariant', { skip: pg }, async () => {
  const r = await SCENARIOS.leaderFreeze({ rounds: 1, lease: 2000 });
  holds(r);
  assert.ok(r.takeoverMs.every((ms) => ms < 2000 * 3), `take-over took ${r.takeoverMs} ms`);
});

test('terminated_leader_sessions_during_a_change_stream_break_no_invariant', { skip: pg }, async () => {
  holds(await SCENARIOS.sessionTerminate({ rounds: 4, lease: 2000 }));
});
