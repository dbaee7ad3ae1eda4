import type { EventEmitter } from 'node:events';
import type { Worker } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';

/** The highest concurrency Sluice can ask for (a policy's `max` is at most this); higher values are ignored. */
export const CONCURRENCY_LIMIT: 100000;

export interface AttachOptions {
  /** The Sluice queue name this worker serves (as declared in the policies). */
  queue: string;
  /**
   * Sluice's Redis: a URL `redis://[USER[:PASSWORD]@]HOST:PORT[/DB]` or `rediss://...` (TLS),
   * ioredis options, or an ioredis client (duplicated, never closed; used as configured).
   * Default redis://127.0.0.1:6379.
   */
  redis?: string | RedisOptions | Redis;
  /** CA to verify the Redis server with (rediss:// only): a file path or a PEM. Default env SLUICE_REDIS_CA, else Node's trust store. */
  redisCa?: string | Buffer;
  /** Client certificate for mutual TLS (rediss:// only): a file path or a PEM. Default env SLUICE_REDIS_CERT. Needs redisKey. */
  redisCert?: string | Buffer;
  /** Key of the client certificate: a file path or a PEM. Default env SLUICE_REDIS_KEY. Needs redisCert. */
  redisKey?: string | Buffer;
  /** Key and channel prefix, as `sluiced --prefix`. Default "sluice". */
  prefix?: string;
  /** Worker id in the fleet. Default `<queue>-<host>-<pid>`. */
  id?: string;
  /** Hard limit never passed to BullMQ; higher desired values are clamped and reported as an error. */
  max?: number;
  /** Heartbeat interval in ms. Default 1000. */
  heartbeatMs?: number;
  /** How often the desired hash is re-read, in ms. Default 5000. */
  pollMs?: number;
  /** Where ignored desired states (warn) and an unhandled lasting failure (error) are logged. Default console. */
  logger?: { warn(message: string): void; error(message: string): void };
}

/** A connection failure that retrying cannot heal. */
export interface SluiceConnectionError extends Error {
  /** 'auth' (WRONGPASS, NOAUTH), 'permission' (NOPERM), 'certificate' (server certificate not verified), 'client-certificate' (refused by the server), 'not-tls'. */
  kind: 'auth' | 'permission' | 'certificate' | 'client-certificate' | 'not-tls';
  /** WRONGPASS, NOAUTH, NOPERM, or Node's TLS error code (UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID, ...). */
  code: string;
  /** The error as ioredis or Node reported it. */
  cause: Error;
}

export interface SluiceHandle extends EventEmitter {
  /** Concurrency in force (0 while Sluice asks for 0: the worker is paused). */
  readonly concurrency: number;
  /**
   * True while Sluice pauses the queue: the BullMQ worker is paused (worker.pause(), running jobs finished
   * before the pause was acknowledged) and takes no job; `concurrency` is what it returns to on resume.
   */
  readonly paused: boolean;
  /** Version of the desired state last applied (0: none or the policy default). */
  readonly version: number;
  /** How many desired-state payloads were ignored as malformed or insane. */
  readonly ignored: number;
  /** The lasting connection failure that stopped the agent, or null. */
  readonly error: SluiceConnectionError | null;
  /**
   * Resolves once both connections are up, the subscription is in place and the desired state was read.
   * Rejects with the lasting failure (or when closed first). Awaiting it is optional.
   */
  readonly ready: Promise<void>;
  /** Say bye and stop following. Does not close the BullMQ worker. */
  close(): Promise<void>;
  /** Emitted once, on a lasting connection failure; the agent has stopped. Without a listener it is logged with logger.error. */
  on(event: 'error', listener: (err: SluiceConnectionError) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'error', listener: (err: SluiceConnectionError) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export function attach(worker: Worker, options: AttachOptions): SluiceHandle;
