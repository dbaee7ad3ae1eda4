// streams.test.mjs — live event streams for any fleet the engine accepts
// (a snapshot far above the old 256 KiB buffer), and a cap per token as well
// as in total, so one reader cannot take every slot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, waitFor } from './harness.mjs';
import { startRedis } from './fleet_harness.mjs';

let srv, redis;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ extraArgs: ['--redis', redis.url, '--max-streams', '12', '--max-streams-per-token', '3'] });
});
after(async () => { await srv?.cleanup(); await redis?.cleanup(); });

function openEvents(token) {
  return new Promise((resolveP, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/admin/runtime-scaling/events',
      headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const stream = { res, req, status: res.statusCode, events: [], raw: '', body: '' };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (res.statusCode !== 200) { stream.body += d; return; }
        stream.raw += d;
        let i;
        while ((i = stream.raw.indexOf('\n\n')) >= 0) {
          const block = stream.raw.slice(0, i);
          stream.raw = stream.raw.slice(i + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type) stream.events.push({ type, size: data.length, data: JSON.parse(data) });
        }
      });
      res.on('end', () => { stream.ended = true; });
      resolveP(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

test('a_snapshot_of_3000_workers_reaches_an_event_stream_whole', async () => {
  const c = redis.client();
  const pipe = c.pipeline();
  for (let i = 0; i < 3000; i++) {
    pipe.publish('sluice:reports', JSON.stringify({ event: 'heartbeat', worker: `big-fleet-worker-${String(i).padStart(5, '0')}`,
      queue: 'alpha', concurrency: 4, version: 0, active: 1, completed: i, failed: 0, interval_ms: 60000,
      host: 'a-rather-long-host-name-for-this-test.example', agent: 'libsluice/0.2' }));
  }
  await pipe.exec();
  assert.ok(await waitFor(async () => {
    const s = await srv.request('GET', '/admin/runtime-scaling', { token: srv.tokens.read });
    return s.json.queues.find((q) => q.queue === 'alpha').worker_count === 3000;
  }, 10000), 'the fleet did not take 3000 workers');
  const s = await openEvents(srv.tokens.read);
  try {
    assert.equal(s.status, 200);
    assert.ok(await waitFor(() => s.events.length >= 2, 8000), `events: ${s.events.map((e) => `${e.type}:${e.size}`)}`);
    const first = s.events[0];
    assert.equal(first.type, 'snapshot');
    assert.ok(first.size > 256 * 1024, `snapshot only ${first.size} bytes`);
    assert.equal(first.data.queues.find((q) => q.queue === 'alpha').workers.length, 3000);
    assert.ok(!s.ended, 'the stream ended');
  } finally { s.req.destroy(); }
});

test('one_token_cannot_take_every_stream_slot', async () => {
  const mine = [];
  // Streams closed by earlier tests are noticed at their next write.
  assert.ok(await waitFor(async () => /^sluice_event_streams 0$/m.test((await srv.request('GET', '/metrics')).text), 5000));
  try {
    for (let i = 0; i < 3; i++) mine.push(await openEvents(srv.tokens.read));
    assert.deepEqual(mine.map((s) => s.status), [200, 200, 200]);
    const fourth = await openEvents(srv.tokens.read);
    await waitFor(() => fourth.body.length > 0 || fourth.ended, 2000);
    assert.equal(fourth.status, 429);
    assert.equal(JSON.parse(fourth.body).error.code, 'too_many_streams');
    const admin = await openEvents(srv.tokens.admin);       // another token still gets one
    mine.push(admin);
    assert.equal(admin.status, 200);
  } finally { for (const s of mine) s.req.destroy(); }
});
