// sluice-bullmq — binds a BullMQ Worker to Sluice (protocol.md).
//
// Reads <prefix>:desired on start and after every reconnect, listens on
// <prefix>:scaling, re-reads on a timer (pub/sub loses messages), applies
// only newer versions by setting worker.concurrency, acknowledges with the
// concurrency the worker really has, heartbeats with totals from the
// worker's own events, clamps to `max` and reports an error, says bye on
// close. BullMQ refuses concurrency below 1: a desired 0 pauses the worker
// (running jobs finish) instead of ever passing 0 to it.
//
// A paused queue ("paused": true in the desired state) pauses the worker
// with BullMQ's worker.pause(), which lets the running jobs finish; the
// pause's version is acknowledged, with "paused": true, once they have.
// Jobs stay waiting in BullMQ. "paused": false resumes it (worker.resume()).
// While paused, reports say as "concurrency" what the worker returns to.
// Versions are applied one after the other, in order: a resume that comes
// while a pause waits for running jobs is applied after it.
//
// Payloads come from outside: one whose version or concurrency is not a sane
// integer is ignored (no apply, no ack) and logged at most once a minute.
// A connection failure that retrying cannot heal (credentials refused,
// permission denied, certificate not verified) stops the agent and is
// reported once: an `error` event on the handle, and `ready` rejects.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import tls from 'node:tls';
import Redis from 'ioredis';

const AGENT = 'sluice-bullmq/0.2';
const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const DEFAULT_URL = 'redis://127.0.0.1:6379';
// The highest concurrency Sluice can ever ask for: a policy's `max` is at
// most 100000 (policies.md). Anything above is not from sluiced.
export const CONCURRENCY_LIMIT = 100000;
const PAYLOAD_MAX = 4096;                     // as libsluice
const LOG_EVERY_MS = 60000;                   // ignored payloads: one log line a minute at most

// OpenSSL's certificate verification results (as Node reports them in
// err.code) and Node's host-name check: retrying cannot fix any of them.
const CERT_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD', 'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);
// TLS alerts by which the server refuses our (missing) client certificate.
const PEER_REFUSED = /^ERR_SSL_.*ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;

// What kind of lasting failure an error is, or null when a retry may heal it.
function lasting(err) {
  if (!err) return null;
  const code = typeof err.code === 'string' ? err.code : '';
  if (CERT_CODES.has(code)) return 'certificate';
  if (PEER_REFUSED.test(code)) return 'client-certificate';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return 'not-tls';
  const msg = typeof err.message === 'string' ? err.message : '';
  const m = /(?:^|: )(WRONGPASS|NOAUTH|NOPERM)\b/.exec(msg) || /(?:^|: )ERR (invalid password|invalid username-password pair)/.exec(msg);
  if (m) return m[1] === 'NOPERM' ? 'permission' : 'auth';
  return null;
}

// A PEM given inline, or a file holding one.
function pem(value, what) {
  if (value === undefined || value === null || value === '') return undefined;
  if (Buffer.isBuffer(value)) return value;
  if (typeof value !== 'string') throw new TypeError(`attach: ${what} must be a file path or a PEM string`);
  if (value.includes('-----BEGIN ')) return value;
  try {
    return readFileSync(value);
  } catch (e) {
    throw new Error(`attach: ${what}: cannot read ${value}: ${e.code || e.message}`);
  }
}

// SLUICE_REDIS_PASSWORD, else the first line of SLUICE_REDIS_PASSWORD_FILE (as sluiced).
function passwordFromEnv() {
  if (process.env.SLUICE_REDIS_PASSWORD) return process.env.SLUICE_REDIS_PASSWORD;
  const file = process.env.SLUICE_REDIS_PASSWORD_FILE;
  if (!file) return undefined;
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`attach: SLUICE_REDIS_PASSWORD_FILE: cannot read ${file}: ${e.code || e.message}`);
  }
  return text.split(/\r?\n/, 1)[0] || undefined;
}

// How to open the agent's connections: a factory, plus what the messages
// may show of the target (never the password).
function target(options) {
  const redis = options.redis;
  const env = process.env;
  const explicitTls = ['redisCa', 'redisCert', 'redisKey'].filter((k) => options[k] !== undefined && options[k] !== null && options[k] !== '');
  if (redis && typeof redis.duplicate === 'function') {
    if (explicitTls.length) throw new TypeError(`attach: ${explicitTls.join(', ')} cannot be used with an ioredis client: configure TLS on the client`);
    return { open: () => redis.duplicate() };
  }
  const ca = pem(options.redisCa ?? env.SLUICE_REDIS_CA, options.redisCa ? 'redisCa' : 'SLUICE_REDIS_CA');
  const cert = pem(options.redisCert ?? env.SLUICE_REDIS_CERT, options.redisCert ? 'redisCert' : 'SLUICE_REDIS_CERT');
  const key = pem(options.redisKey ?? env.SLUICE_REDIS_KEY, options.redisKey ? 'redisKey' : 'SLUICE_REDIS_KEY');
  if (!cert !== !key) throw new TypeError('attach: a client certificate needs its key, and the other way round (redisCert and redisKey)');
  const extras = { ...(ca ? { ca } : {}), ...(cert ? { cert, key } : {}) };
  if (Object.keys(extras).length) {
    try {
      tls.createSecureContext(extras);       // a bad PEM or a key that does not match fails here, once
    } catch (e) {
      throw new Error(`attach: the Redis TLS CA, certificate or key cannot be used: ${e.message}`);
    }
  }
  const needsTls = () => {
    if (Object.keys(extras).length) {
      throw new TypeError('attach: a CA, client certificate or key (redisCa, redisCert, redisKey or SLUICE_REDIS_CA/_CERT/_KEY) needs a rediss:// (TLS) URL');
    }
  };

  if (typeof redis === 'string' || redis === undefined || redis === null) {
    let url = redis || DEFAULT_URL;
    const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase();
    if (!scheme) {                             // a port, host:port or socket path: as ioredis takes it
      needsTls();
      const password = passwordFromEnv();
      return { open: () => new Redis(url, password ? { password } : {}) };
    }
    let u;
    try {
      u = new URL(url);
    } catch {
      throw new TypeError('attach: redis: expected redis://[USER[:PASSWORD]@]HOST:PORT[/DB] or rediss://...');
    }
    if (!u.hostname) throw new TypeError('attach: redis: the URL has no host');
    if (u.password === '') {
      const password = passwordFromEnv();
      if (password) {
        u.password = encodeURIComponent(password);   // ioredis decodes it
        url = u.toString();
      }
    }
    if (scheme === 'redis') {
      needsTls();
      return { open: () => new Redis(url) };
    }
    // rediss://: Node verifies the chain (CA given, else its default store)
    // and the host name. Verification is never turned off here.
    return { open: () => new Redis(url, { tls: { ...extras } }) };
  }

  if (typeof redis === 'object') {
    const o = { ...redis };
    if (o.password === undefined || o.password === null || o.password === '') {
      const password = passwordFromEnv();
      if (password) o.password = password;
    }
    if (o.tls) {
      o.tls = { ...extras, ...(typeof o.tls === 'object' ? o.tls : {}) };   // the caller's own settings win
    } else {
      needsTls();
    }
    return { open: () => new Redis(o) };
  }
  throw new TypeError('attach: redis must be a URL, ioredis options or an ioredis client');
}

// Close a connection for good. A TLS socket closed in the middle of its
// handshake (the other connection has just failed) can still report an
// error from the server after ioredis stopped listening; unheard, Node
// would throw it.
function quietDisconnect(conn) {
  for (const stream of new Set([conn.stream, conn.connector?.stream])) {
    if (stream && typeof stream.on === 'function') stream.on('error', () => {});
  }
  conn.disconnect();
}

function describe(conn) {
  const o = conn.options || {};
  const where = o.path ? o.path : `${o.host || '127.0.0.1'}:${o.port || 6379}`;
  return `${o.tls ? 'rediss' : 'redis'}://${o.username ? `${o.username}@` : ''}${where}`;
}

export function attach(worker, options) {
  const { queue, prefix = 'sluice', max = 0, heartbeatMs = 1000, pollMs = 5000, logger = console } = options || {};
  if (!worker || typeof worker.on !== 'function') throw new TypeError('attach: a BullMQ Worker is required');
  if (typeof queue !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(queue)) throw new TypeError('attach: queue must be 1..64 of A-Z a-z 0-9 _ . : -');
  if (!(Number.isInteger(max) && max >= 0)) throw new TypeError('attach: max must be a non-negative integer');
  if (!logger || typeof logger.warn !== 'function' || typeof logger.error !== 'function') throw new TypeError('attach: logger must have warn() and error()');
  const host = os.hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 50);
  const id = options.id || `${queue}-${host}-${process.pid}`;
  if (!NAME.test(id)) throw new TypeError('attach: id must be 1..128 of A-Z a-z 0-9 _ . : -');

  const { open } = target(options);            // throws on bad settings, before any connection
  const cmd = open();
  const sub = open();
  const where = describe(cmd);
  const state = {
    // zero: Sluice asks for 0; paused: Sluice paused the queue; held: the
    // BullMQ worker is paused for either reason. chain: applies in order.
    version: 0, concurrency: worker.concurrency, zero: false, paused: false, held: false,
    chain: Promise.resolve(), active: 0, completed: 0, failed: 0,
    closed: false, error: null, subscribed: false, read: false, ready: false,
    ignored: 0, ignoredLoggedAt: 0, ignoredSinceLog: 0,
  };
  const handle = new EventEmitter();
  let resolveReady;
  let rejectReady;
  const ready = new Promise((res, rej) => { resolveReady = res; rejectReady = rej; });
  ready.catch(() => {});                        // awaiting it is optional: never an unhandled rejection

  // A failure that retrying cannot heal: stop everything, say it once.
  const fail = (cause) => {
    if (state.error || state.closed) return;
    const kind = lasting(cause);
    const detail = cause.message || String(cause);
    const why = {
      auth: `Redis refused the credentials (${detail}); check the user and password (URL, SLUICE_REDIS_PASSWORD or SLUICE_REDIS_PASSWORD_FILE)`,
      permission: `Redis denied a command to this user (${detail}); its ACL must allow HGET ${prefix}:desired, SUBSCRIBE ${prefix}:scaling and PUBLISH ${prefix}:reports`,
      certificate: `the Redis server's TLS certificate could not be verified (${cause.code}: ${detail}); check redisCa / SLUICE_REDIS_CA and the host name in the URL`,
      'client-certificate': `the Redis server refused the TLS client certificate (${cause.code}); check redisCert/redisKey (SLUICE_REDIS_CERT/SLUICE_REDIS_KEY)`,
      'not-tls': `the Redis server did not answer TLS (${cause.code}); is this a plain redis:// port?`,
    }[kind];
    const err = new Error(`sluice-bullmq: ${where}: ${why}; not retrying`, { cause });
    err.code = kind === 'auth' || kind === 'permission' ? (/\b(WRONGPASS|NOAUTH|NOPERM)\b/.exec(detail)?.[1] || 'WRONGPASS') : cause.code;
    err.kind = kind;
    state.error = err;
    stop();
    rejectReady(err);
    if (handle.listenerCount('error') > 0) handle.emit('error', err);
    else logger.error(err.message);
  };
  const onRedisError = (e) => { if (lasting(e)) fail(e); };   // others: ioredis reconnects on its own
  cmd.on('error', onRedisError);
  sub.on('error', onRedisError);

  const checkReady = () => {
    if (!state.ready && state.subscribed && state.read && !state.error && !state.closed) {
      state.ready = true;
      resolveReady();
    }
  };

  const report = (event, error = null) => {
    if (cmd.status !== 'ready' || state.error) return;
    cmd.publish(`${prefix}:reports`, JSON.stringify({
      event, worker: id, queue, concurrency: state.zero ? 0 : state.concurrency, version: state.version,
      paused: state.paused, active: state.active, completed: state.completed, failed: state.failed,
      pid: process.pid, host, agent: AGENT, ts: Date.now(), error, interval_ms: heartbeatMs,
    })).catch(onRedisError);
  };

  // A payload we will not apply: counted, logged at most once a minute.
  const ignore = (why, payload, source) => {
    state.ignored++;
    const now = Date.now();
    if (state.ignoredLoggedAt && now - state.ignoredLoggedAt < LOG_EVERY_MS) {
      state.ignoredSinceLog++;
      return;
    }
    const more = state.ignoredSinceLog ? `; ${state.ignoredSinceLog} more ignored since the last such message` : '';
    state.ignoredLoggedAt = now;
    state.ignoredSinceLog = 0;
    const shown = payload.length > 200 ? `${payload.slice(0, 200)}...` : payload;
    logger.warn(`sluice-bullmq: ignored a desired state from ${source} for queue ${queue}: ${why} (${JSON.stringify(shown)})${more}`);
  };

  // Apply a desired-state payload if it is for us, sane and newer. Payloads
  // come from outside: anything else changes nothing.
  const consider = (payload, source) => {
    if (typeof payload !== 'string') payload = String(payload);
    if (payload.length > PAYLOAD_MAX) return ignore(`longer than ${PAYLOAD_MAX} bytes`, payload, source);
    let d;
    try { d = JSON.parse(payload); } catch { return ignore('not JSON', payload, source); }
    if (!d || typeof d !== 'object' || Array.isArray(d)) return ignore('not a JSON object', payload, source);
    if (typeof d.queue !== 'string') return ignore('no queue name', payload, source);
    if (d.queue !== queue) return;             // another queue's: normal on the shared channel
    const c = d.concurrency;
    const v = d.version;
    // Number.isSafeInteger: JSON numbers above 2^53-1 (9223372036854775807,
    // say) arrive rounded and could never be compared reliably.
    if (!Number.isSafeInteger(v) || v < 0) return ignore('version is not an integer in 0..2^53-1', payload, source);
    if (!Number.isSafeInteger(c) || c < 0) return ignore('concurrency is not a non-negative integer', payload, source);
    if (c > CONCURRENCY_LIMIT) return ignore(`concurrency is above ${CONCURRENCY_LIMIT}, more than any Sluice policy allows`, payload, source);
    const paused = d.paused === undefined ? false : d.paused;   // an older sluiced: running
    if (typeof paused !== 'boolean') return ignore('paused is not a boolean', payload, source);
    if (v <= state.version && state.version > 0) return;
    state.chain = state.chain.then(() => apply(v, c, paused)).catch((e) => logger.error(`sluice-bullmq: ${e.message}`));
  };

  // Apply version v (concurrency c, paused) unless a newer one came first.
  const apply = async (v, c, paused) => {
    if (state.closed || state.error) return;
    if (v <= state.version && state.version > 0) return;
    if (v === 0 && state.version === 0 && c === (state.zero ? 0 : state.concurrency) && paused === state.paused) return;
    let n = c;
    let error = null;
    if (max > 0 && n > max) {
      error = `desired ${n} is above this worker's hard limit ${max}; running ${max}`;
      n = max;
    }
    if (n > 0) {
      worker.concurrency = n;                 // a finite integer >= 1: BullMQ accepts it
      state.concurrency = worker.concurrency;
    }
    state.zero = n === 0;
    const hold = paused || n === 0;
    if (hold && !state.held) {
      state.held = true;
      const done = worker.pause().catch(() => {});   // running jobs finish
      if (paused) await done;                 // the ack of a pause says they have
    } else if (!hold && state.held) {
      state.held = false;
      Promise.resolve(worker.resume()).catch(() => {});
    }
    state.paused = paused;
    state.version = v;
    report(error ? 'error' : 'ack', error);
  };

  const readDesired = () => {
    if (cmd.status !== 'ready' || state.closed || state.error) return;
    cmd.hget(`${prefix}:desired`, queue).then((v) => {
      if (v) consider(v, `${prefix}:desired`);
      state.read = true;
      checkReady();
    }).catch(onRedisError);
  };

  cmd.on('ready', readDesired);               // on start and after every reconnect
  sub.on('ready', () => {
    sub.subscribe(`${prefix}:scaling`).then(() => { state.subscribed = true; checkReady(); }).catch(onRedisError);
    readDesired();
  });
  sub.on('message', (channel, message) => { if (channel === `${prefix}:scaling`) consider(message, `${prefix}:scaling`); });
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

  function stop() {
    clearInterval(poll);
    clearInterval(beat);
    worker.off('active', onActive);
    worker.off('completed', onCompleted);
    worker.off('failed', onFailed);
    quietDisconnect(sub);
    quietDisconnect(cmd);
  }

  Object.defineProperties(handle, {
    concurrency: { get() { return state.zero ? 0 : state.concurrency; }, enumerable: true },
    paused: { get() { return state.paused; }, enumerable: true },
    version: { get() { return state.version; }, enumerable: true },
    ignored: { get() { return state.ignored; }, enumerable: true },
    error: { get() { return state.error; }, enumerable: true },
    ready: { value: ready, enumerable: true },
    close: {
      enumerable: true,
      async value() {
        if (state.closed) return;
        const wasFailed = state.error;
        state.closed = true;
        if (!state.ready && !wasFailed) rejectReady(new Error('sluice-bullmq: closed before it was ready'));
        if (wasFailed) return;                // already stopped
        if (cmd.status === 'ready') {
          await cmd.publish(`${prefix}:reports`, JSON.stringify({ event: 'bye', worker: id, queue, agent: AGENT, ts: Date.now() })).catch(() => {});
        }
        stop();
      },
    },
  });
  return handle;
}
