// fleet_harness.mjs — real redis-server and sluice-worker processes for the
// propagation tests. Everything binds to 127.0.0.1 and is stopped by the test.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import Redis from 'ioredis';
import { BUILD, sleep, waitFor } from './harness.mjs';

export const WORKER = join(BUILD, 'sluice-worker');

export function freePort() {
  return new Promise((resolveP, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolveP(port));
    });
  });
}

// A private, memory-only redis-server. stop() and start() keep the port, so
// a test can take Redis away and bring it back empty.
export async function startRedis() {
  const r = {
    port: await freePort(),
    proc: null,
    clients: [],
    get url() { return `redis://127.0.0.1:${this.port}`; },
    async start() {
      this.proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(this.port),
        '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      this.exited = new Promise((res) => this.proc.on('exit', res));
      const c = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true, retryStrategy: null, maxRetriesPerRequest: 0 });
      c.on('error', () => {});
      const ok = await waitFor(async () => {
        try { await c.connect(); return (await c.ping()) === 'PONG'; } catch { return false; }
      }, 5000, 50);
      c.disconnect();
      if (!ok) throw new Error('redis-server did not start');
      return this;
    },
    async stop() {
      if (!this.proc) return;
      this.proc.kill('SIGKILL');
      await this.exited;
      this.proc = null;
    },
    // A client for the test itself; closed by cleanup().
    client() {
      const c = new Redis({ port: this.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      c.on('error', () => {});     // Redis going away is part of some tests
      this.clients.push(c);
      return c;
    },
    async cleanup() {
      for (const c of this.clients) c.disconnect();
      this.clients = [];
      await this.stop();
    },
  };
  return r.start();
}

// Collect JSON messages of a channel, for assertions on order and content.
export async function listen(redis, channel) {
  const sub = redis.client();
  const seen = [];
  await sub.subscribe(channel);
  sub.on('message', (ch, msg) => {
    if (ch !== channel) return;
    try { seen.push(JSON.parse(msg)); } catch { /* garbage is a test subject, not a failure here */ }
  });
  return seen;
}

export function startWorker(redis, queue, args = []) {
  const w = {
    proc: spawn(WORKER, ['--queue', queue, '--redis', redis.url, '--heartbeat-ms', '200', ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] }),
    log: '',
  };
  w.proc.stderr.on('data', (d) => { w.log += d; });
  w.exited = new Promise((res) => w.proc.on('exit', (code, signal) => res({ code, signal })));
  w.stop = async (signal = 'SIGTERM') => { w.proc.kill(signal); return w.exited; };
  return w;
}

export async function produce(redis, queue, n, args = []) {
  const p = spawn(WORKER, ['--produce', String(n), '--queue', queue, '--redis', redis.url, ...args], { stdio: 'ignore' });
  const code = await new Promise((res) => p.on('exit', res));
  if (code !== 0) throw new Error(`producer exited ${code}`);
}

// The latest report of each worker, by worker id.
export async function reports(redis) {
  const seen = await listen(redis, 'sluice:reports');
  const latest = {};
  const all = [];
  const origPush = seen.push.bind(seen);
  seen.push = (m) => { latest[m.worker] = m; all.push(m); return origPush(m); };
  return { latest, all };
}

export { sleep, waitFor };
