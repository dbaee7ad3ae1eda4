import type { Worker } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';

export interface AttachOptions {
  /** The Sluice queue name this worker serves (as declared in the policies). */
  queue: string;
  /** Sluice's Redis: a URL, ioredis options, or an ioredis client (duplicated, never closed). Default redis://127.0.0.1:6379. */
  redis?: string | RedisOptions | Redis;
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
}

export interface SluiceHandle {
  /** Concurrency in force (0 while Sluice asks for 0: the worker is paused). */
  readonly concurrency: number;
  /** Version of the desired state last applied (0: none or the policy default). */
  readonly version: number;
  /** Say bye and stop following. Does not close the BullMQ worker. */
  close(): Promise<void>;
}

export function attach(worker: Worker, options: AttachOptions): SluiceHandle;
