// sluice-bullmq — binds a BullMQ Worker to Sluice (protocol.md).
//
// Reads <prefix>:desired on start and after every reconnect, listens on
// <prefix>:scaling, re-reads on a timer (pub/sub loses messages), applies
// only newer versions by setting worker.concurrency, acknowledges with the
// concurrency the worker really has, heartbeats with totals from the
// worker's own events, clamps to `max` and reports an error, says bye on
// close. BullMQ refuses concurrency below 1: a desired 0 pauses the worker
// (running jobs finish) instead of ever passing 0 to it.
import os from 'node:os';
import Redis from 'ioredis';

const AGENT = 'sluice-bullmq/0.1';
const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

function connect(redis) {
  if (redis && typeof redis.duplicate === 'function') return redis.duplicate();
  if (typeof redis === 'string' || redis === undefined) return new Redis(redis || 'redis://127.0.0.1:6379');
  return new Redis(redis);
}

export function attach(worker, options) {
  const { queue, prefix = 'sluice', max = 0, heartbeatMs = 1000, pollMs = 5000 } = options || {};
  if (!worker || typeof worker.on !== 'function') throw new TypeError('attach: a BullMQ Worker is required');
  if (typeof queue !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(queue)) throw new TypeError('attach: queue must be 1..64 of A-Z a-z 0-9 _ . : -');
  if (!(Number.isInteger(max) && max >= 0)) throw new TypeError('attach: max must be a non-negative integer');
  const host = os.hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 50);
  const id = options.id || `${queue}-${host}-${process.pid}`;
  if (!NAME.test(id)) throw new TypeError('attach: id must be 1..128 of A-Z a-z 0-9 _ . : -');

  const cmd = connect(options.redis);
  const sub = connect(options.redis);
  cmd.on('error', () => {});                   // reconnects on its own; state is re-read on ready
  sub.on('error', () => {});
  const state = { version: 0, concurrency: worker.concurrency, paused: false, active: 0, completed: 0, failed: 0, closed: false };

  const report = (event, error = null) => {
    if (cmd.status !== 'ready') return;
    cmd.publish(`${prefix}:reports`, JSON.stringify({
      event, worker: id, queue, concurrency: state.paused ? 0 : state.concurrency, version: state.version,
      active: state.active, completed: state.completed, failed: state.failed, pid: process.pid, host,
      agent: AGENT, ts: Date.now(), error, interval_ms: heartbeatMs,
    })).catch(() => {});
  };

  // Apply a desired-state payload if it is for us and newer. Payloads come
  // from outside: anything malformed is ignored.
  const consider = (payload) => {
    let d;
    try { d = JSON.parse(payload); } catch { return; }
    if (!d || d.queue !== queue || !Number.isInteger(d.concurrency) || d.concurrency < 0 ||
        !Number.isInteger(d.version) || d.version < 0) return;
    if (d.version <= state.version && state.version > 0) return;
    if (d.version === 0 && state.version === 0 && d.concurrency === (state.paused ? 0 : state.concurrency)) return;
    let n = d.concurrency;
    let error = null;
    if (max > 0 && n > max) {
      error = `desired ${n} is above this worker's hard limit ${max}; running ${max}`;
      n = max;
    }
    if (n === 0) {
      if (!state.paused) worker.pause().catch(() => {});   // running jobs finish
      state.paused = true;
    } else {
      worker.concurrency = n;                 // a finite integer >= 1: BullMQ accepts it
      state.concurrency = worker.concurrency;
      if (state.paused) worker.resume();
      state.paused = false;
    }
    state.version = d.version;
    report(error ? 'error' : 'ack', error);
  };

  const readDesired = () => {
    if (cmd.status !== 'ready' || state.closed) return;
    cmd.hget(`${prefix}:desired`, queue).then((v) => { if (v) consider(v); }).catch(() => {});
  };

  cmd.on('ready', readDesired);               // on start and after every reconnect
  sub.on('ready', () => { sub.subscribe(`${prefix}:scaling`).catch(() => {}); readDesired(); });
  sub.on('message', (channel, message) => { if (channel === `${prefix}:scaling`) consider(message); });
  const onActive = () => { state.active++; };
  const onCompleted = () => { state.completed++; state.active = Math.max(0, state.active - 1); };
  const onFailed = () => { state.failed++; state.active = Math.max(0, state.active - 1); };
  worker.on('active', onActive);
  worker.on('completed', onCompleted);
  worker.on('failed', onFailed);
  const poll = setInterval(readDesired, pollMs);
  const beat = setInterval(() => report('heartbeat'), heartbeatMs);
  poll.unref?.();
  beat.unref?.();

  return {
    get concurrency() { return state.paused ? 0 : state.concurrency; },
    get version() { return state.version; },
    async close() {
      if (state.closed) return;
      state.closed = true;
      clearInterval(poll);
      clearInterval(beat);
      worker.off('active', onActive);
      worker.off('completed', onCompleted);
      worker.off('failed', onFailed);
      if (cmd.status === 'ready') {
        await cmd.publish(`${prefix}:reports`, JSON.stringify({ event: 'bye', worker: id, queue, agent: AGENT, ts: Date.now() })).catch(() => {});
      }
      sub.disconnect();
      cmd.disconnect();
    },
  };
}
