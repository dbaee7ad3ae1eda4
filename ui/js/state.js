// state.js — what the page knows, shared by the modules, and the API call
// that carries the CSRF token of this session.
import { api } from './util.js';

export const state = {
  who: null,          // GET /api/v1/whoami
  csrf: null,         // from login or whoami; memory only
  snap: null,         // the latest snapshot
  snapAt: 0,          // Date.now() when it arrived (countdowns run from it)
  cards: new Map(),   // queue -> card (card.js)
  history: new Map(), // queue -> latest audit entries of the queue
  events: null,       // the EventSource
  writable: undefined,
};

export const call = (method, path, body) => api(method, path, body, state.csrf);

export const canWrite = () =>
  Boolean(state.who && state.who.scopes.includes('scaling:write') && state.who.writes_enabled !== false);

export const queueOf = (name) => state.snap?.queues.find((x) => x.queue === name);

// A stored value outside the bounds in force (a reload narrowed them).
// The server says so in `out_of_bounds`; before it does (older servers),
// the page can tell from the bounds it already has.
export function outOfBounds(q) {
  if (typeof q.out_of_bounds === 'boolean') return q.out_of_bounds;
  const b = q.bounds;
  return q.desired_concurrency != null && b != null && (q.desired_concurrency < b.min || q.desired_concurrency > b.max);
}

// The statuses of a queue at a glance, most urgent first: the overview
// table and the card title show the same ones.
export function statuses(q, card) {
  const s = [];
  if (q.alerts.some((a) => a.state === 'firing')) s.push('alerts');
  if (outOfBounds(q)) s.push('out of bounds');
  if (q.paused) s.push('paused');
  if (q.workers.some((w) => workerState(w, q, card) === 'mismatch' || w.state === 'invalid')) s.push('mismatch');
  if (q.pending_updates > 0) s.push('pending');
  if (!s.length) s.push('ok');
  return s;
}

// What a worker row says. Right after a change (seen as a new version),
// a worker still on an older version is taking it, not refusing it: it
// shows "updating" until it acknowledges or UPDATING_MS pass.
export const UPDATING_MS = 5000;
export function workerState(w, q, card) {
  if (w.state !== 'mismatch') return w.state;
  const since = card?.versionChangedAt;
  if (since && Date.now() - since < UPDATING_MS && q.version != null && w.version < q.version) return 'updating';
  return 'mismatch';
}
