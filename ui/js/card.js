// card.js — one queue: its status, alerts with their cause, a running
// override, the numbers, the autoscaler (autoscale.js), the charts, the
// workers (each with a detail row) and its own history. The controls are
// controls.js's.
import { el, fmtRate, fmtSpan, fmtHM, num } from './util.js';
import { state, call, canWrite, outOfBounds, statuses, workerState } from './state.js';
import { makeCharts, loadChartHistory, appendSnapshot, markersChanged } from './charts.js';
import { makeControls, updateControls, endOverride, revertTo } from './controls.js';
import { historyRow } from './audit.js';
import { makePause, renderPause } from './pause.js';
import { makeAutoscale, showAutoscale } from './autoscale.js';

function stat(label, hint) {
  const v = el('div', { class: 'v' }, '–');
  return { root: el('div', { class: 'stat', title: hint }, v, el('div', { class: 'k' }, label)), v };
}

// [long, short]: the short one is for phones (style.css).
const WORKER_COLS = [['Worker'], ['Concurrency', 'Conc.'], ['Version', 'Ver.'], ['Active'], ['Last seen', 'Seen'], ['State']];
const colHead = ([long, short]) => el('th', { scope: 'col' }, short
  ? [el('span', { class: 'long' }, long), el('abbr', { class: 'short', title: long }, short)] : long);

export function makeCard(q) {
  const c = { queue: q.queue, dirty: false, workerRows: new Map(), openWorkers: new Set() };
  const id = `queue-${q.queue}`;
  c.status = el('span', { class: 'status' });
  c.title = el('h2', { id: `${id}-title` }, q.queue, el('span', { class: 'tag' }, q.layout), c.status);
  c.alerts = el('ul', { class: 'alerts', 'aria-label': `Alerts of ${q.queue}` });
  c.override = el('div', { class: 'override', hidden: true });
  c.oob = el('p', { class: 'oob', hidden: true });
  c.desired = stat('desired / worker', 'How many jobs each worker may run at once');
  c.running = stat('running (all workers)', 'The concurrency the live workers report, added up');
  c.workers = stat('workers', 'Live workers');
  c.pending = stat('pending updates', 'Changes not yet sent, plus versions the slowest worker is behind');
  c.depthW = stat('waiting', 'Jobs waiting in Redis now');
  c.depthA = stat('active', 'Jobs being worked on now');
  c.rateDone = stat('done / s', 'Jobs finished per second, over up to the last minute');
  c.rateFailed = stat('failed / s', 'Jobs failed per second, over up to the last minute');
  // The failed list only grows: a total, not a live count, so it is not
  // one of the live figures above.
  c.failedList = el('p', { class: 'failed-list' });
  c.workerBody = el('tbody');
  c.historyBody = el('tbody');
  makeCharts(c);
  c.root = el('article', { class: 'card', id, 'aria-label': `Queue ${q.queue}` },
    c.title, c.alerts, makePause(c), c.override, c.oob,
    el('div', { class: 'stats', role: 'group', 'aria-label': 'Concurrency' },
      c.desired.root, c.running.root, c.workers.root, c.pending.root),
    el('div', { class: 'stats jobs', role: 'group', 'aria-label': 'Jobs now' },
      c.depthW.root, c.depthA.root, c.rateDone.root, c.rateFailed.root),
    c.failedList,
    makeAutoscale(c),
    c.charts.root,
    el('h3', { class: 'sub' }, 'Workers'),
    el('div', { class: 'scroll' }, el('table', { class: 'workers' },
      el('thead', {}, el('tr', {}, ...WORKER_COLS.map(colHead))),
      c.workerBody)),
    makeControls(c, q),
    el('details', { open: true }, el('summary', {}, 'History'),
      el('div', { class: 'scroll' }, el('table', { class: 'history' },
        el('thead', {}, el('tr', {}, ...['When', 'Who', 'Change', 'Reason', 'Source', 'Outcome'].map((h) => el('th', { scope: 'col' }, h)))),
        c.historyBody))));
  return c;
}

export function firstShow(c) {
  showAutoscale(c);
  loadChartHistory(c);
  loadHistory(c.queue);
}

export function updateCard(c, q, snap) {
  // A version we have not seen: a change, ours or someone else's (events
  // are lost while reconnecting): refresh its history; workers behind it
  // are "updating" for a few seconds.
  if (c.version !== undefined && q.version !== c.version) {
    c.versionChangedAt = Date.now();
    loadHistory(q.queue);
    c.onVersion?.();
  }
  if (c.version === undefined || q.version !== c.version) refreshTarget(c, q);
  c.version = q.version;
  c.q = q;
  const redisUp = snap.redis !== 'down';
  const d = redisUp ? q.depth || {} : {};
  const mism = q.workers.some((w) => workerState(w, q, c) === 'mismatch' || w.state === 'invalid');
  c.desired.v.textContent = num(q.desired_concurrency);
  c.running.v.textContent = num(q.active_concurrency);
  c.running.root.classList.toggle('mismatch', mism);
  c.workers.v.textContent = num(q.worker_count);
  c.pending.v.textContent = num(q.pending_updates);
  c.pending.root.classList.toggle('mismatch', q.pending_updates > 0);
  c.depthW.v.textContent = num(d.waiting);
  c.depthA.v.textContent = num(d.active);
  // Rates come from heartbeats that travel through Redis: while it is down
  // the last figures would be stale, so none are shown.
  const rates = redisUp ? q.rates : null;
  c.rateDone.v.textContent = fmtRate(rates?.completed_per_s);
  c.rateFailed.v.textContent = fmtRate(rates?.failed_per_s);
  c.failedList.textContent = redisUp && d.failed != null
    ? `Failed list: ${d.failed} job${d.failed === 1 ? '' : 's'} kept in Redis (a total since the list was last emptied, not a rate).`
    : 'Failed list: unknown while Redis does not answer.';
  c.status.replaceChildren(...statuses(q, c).map((s) => el('span', { class: `chip s-${s.replace(/ /g, '-')}` }, s)));
  renderAlerts(c, q);
  renderOverride(c, q);
  renderPause(c, q);
  renderOob(c, q);
  renderWorkers(c, q);
  appendSnapshot(c, q, snap);
  updateControls(c, q);
}

// ---- alerts, linked to their cause -------------------------------------------------

function renderAlerts(c, q) {
  c.alerts.hidden = q.alerts.length === 0;
  c.alerts.replaceChildren(...q.alerts.map((a) => el('li', { class: `alert ${a.state}` },
    el('span', { class: `tag ${a.state}` }, a.state === 'pending' ? 'pending' : a.severity || 'firing'),
    ' ', el('strong', {}, a.name), a.since ? ` since ${fmtHM(new Date(a.since).getTime())}` : '', ': ', a.message || '',
    a.worker ? [' ', el('button', { type: 'button', class: 'link', onclick: () => showWorker(c, a.worker) },
      `show worker ${a.worker}`)] : '')));
}

function showWorker(c, id) {
  const row = c.workerRows.get(id);
  if (!row) return;
  c.openWorkers.add(id);
  renderWorkers(c, c.q);
  row.tr.scrollIntoView({ block: 'center', behavior: 'smooth' });
  row.tr.classList.remove('flash');
  void row.tr.offsetWidth;                  // restart the animation
  row.tr.classList.add('flash');
  row.toggle.focus({ preventScroll: true });
}

// ---- a running temporary override --------------------------------------------------

// The snapshot carries expires_at/revert_to from issue 17 on; from an older
// server the page reads them from the Target (GET /api/v1/scaling/{queue})
// whenever the version moves.
async function refreshTarget(c, q) {
  if ('expires_at' in q) return;
  const r = await call('GET', `/api/v1/scaling/${encodeURIComponent(q.queue)}`);
  if (r.status === 200) {
    c.target = r.json;
    if (c.q) renderOverride(c, c.q);
  }
}

function overrideOf(c, q) {
  const src = 'expires_at' in q ? q : c.target;
  if (!src?.expires_at || src.revert_to == null) return null;
  return { until: src.expires_at, revertTo: src.revert_to };
}

function renderOverride(c, q) {
  const o = overrideOf(c, q);
  c.override.hidden = !o;
  if (!o) { c.override.replaceChildren(); return; }
  const untilMs = new Date(o.until).getTime();
  const left = (untilMs - Date.now()) / 1000;
  c.override.replaceChildren(
    el('span', {}, el('strong', {}, 'Temporary override: '),
      `${q.desired_concurrency} until ${fmtHM(untilMs)}, then ${o.revertTo}`,
      el('span', { class: 'muted' }, left > 0 ? ` (in ${fmtSpan(left)})` : ' (ending now)')),
    canWrite() ? el('button', { type: 'button', class: 'small', onclick: () => endOverride(c, o.revertTo) }, 'End now') : '');
}

// ---- a stored value outside the bounds in force -------------------------------------------

function renderOob(c, q) {
  const oob = outOfBounds(q);
  c.oob.hidden = !oob;
  c.root.classList.toggle('is-oob', oob);
  if (!oob) return;
  const b = q.bounds;
  c.oob.textContent = `Out of bounds: the stored value ${q.desired_concurrency} is outside the current bounds ` +
    `${b.min}–${b.max} (the policy changed). Workers still run ${q.desired_concurrency}; a change must choose a value in ${b.min}–${b.max}.`;
}

// ---- workers ---------------------------------------------------------------------------------

function ago(ms) {
  return ms == null ? '–' : ms < 10000 ? `${(ms / 1000).toFixed(1)} s ago` : `${fmtSpan(ms / 1000)} ago`;
}

// Rows are kept per worker id and updated in place, so focus and an open
// detail survive the snapshots.
function renderWorkers(c, q) {
  const seen = new Set();
  const alerted = new Map();
  for (const a of q.alerts) if (a.worker) alerted.set(a.worker, a);
  const rows = [];
  for (const w of q.workers) {
    seen.add(w.id);
    let r = c.workerRows.get(w.id);
    if (!r) r = makeWorkerRow(c, w.id);
    const st = workerState(w, q, c);
    const a = alerted.get(w.id);
    r.tr.className = [st, a ? 'alerted' : '', r.tr.classList.contains('flash') ? 'flash' : ''].filter(Boolean).join(' ');
    r.conc.textContent = num(w.concurrency);
    r.ver.textContent = num(w.version);
    r.active.textContent = num(w.active);
    r.seen.textContent = ago(w.last_seen_ms);
    r.state.replaceChildren(st, w.paused ? ' · paused' : '', a ? el('span', { class: 'alert-note' }, ` · ${a.name}`) : '');
    const open = c.openWorkers.has(w.id);
    r.toggle.setAttribute('aria-expanded', String(open));
    r.detail.hidden = !open;
    if (open) r.detailBody.replaceChildren(...workerDetail(w, q, st, a));
    rows.push(r.tr, r.detail);
  }
  for (const id of [...c.workerRows.keys()]) if (!seen.has(id)) c.workerRows.delete(id);
  if (!q.workers.length) rows.push(el('tr', {}, el('td', { colspan: WORKER_COLS.length }, 'No workers report for this queue.')));
  // Re-append only when the order or the set changed (appending moves focus).
  const now = [...c.workerBody.children];
  if (now.length !== rows.length || now.some((n, i) => n !== rows[i])) c.workerBody.replaceChildren(...rows);
}

function makeWorkerRow(c, id) {
  const r = {};
  const detailId = `w-${c.queue}-${id}`.replace(/[^A-Za-z0-9_-]/g, '_');
  r.toggle = el('button', { type: 'button', class: 'link worker-id', 'aria-expanded': 'false', 'aria-controls': detailId,
    onclick: () => {
      if (c.openWorkers.has(id)) c.openWorkers.delete(id); else c.openWorkers.add(id);
      renderWorkers(c, c.q);
    } }, id);
  r.conc = el('td');
  r.ver = el('td');
  r.active = el('td', { class: 'col-active' });
  r.seen = el('td');
  r.state = el('td');
  r.tr = el('tr', {}, el('th', { scope: 'row' }, r.toggle), r.conc, r.ver, r.active, r.seen, r.state);
  r.detailBody = el('dl', { class: 'worker-detail' });
  r.detail = el('tr', { class: 'detail', id: detailId, hidden: true }, el('td', { colspan: WORKER_COLS.length }, r.detailBody));
  c.workerRows.set(id, r);
  return r;
}

// Fields from issue 17 (host, pid, first_seen_ms, per-worker rates,
// last_error) show "not reported" until the server sends them.
function workerDetail(w, q, st, alert) {
  const nr = el('span', { class: 'muted' }, 'not reported');
  const item = (k, v) => [el('dt', {}, k), el('dd', {}, v == null || v === '' ? nr.cloneNode(true) : v)];
  const err = w.last_error ?? w.error;
  return [
    ...item('host', w.host), ...item('pid', w.pid), ...item('agent', w.agent),
    ...item('uptime', w.first_seen_ms != null ? `${fmtSpan(w.first_seen_ms / 1000)} (since sluiced first saw it)` : null),
    ...item('concurrency', `${w.concurrency} (desired ${num(q.desired_concurrency)})`),
    ...item('version', `${w.version} (queue at ${num(q.version)})`),
    ...item('rates', w.completed_per_s != null ? `${fmtRate(w.completed_per_s)} done / s, ${fmtRate(w.failed_per_s)} failed / s` : null),
    ...item('last error', err || el('span', { class: 'muted' }, 'none')),
    ...item('state', st + (st === 'updating' ? ' (taking the new version)' : '')),
    ...item('last seen', ago(w.last_seen_ms)),
    ...(alert ? item('alert', `${alert.name} (${alert.state}): ${alert.message}`) : []),
  ];
}

// ---- the queue's own history ---------------------------------------------------------------

export async function loadHistory(queue) {
  const r = await call('GET', `/api/v1/scaling/${encodeURIComponent(queue)}/history?limit=15`);
  const c = state.cards.get(queue);
  if (r.status !== 200 || !c) return;
  state.history.set(queue, r.json.items);
  c.historyBody.replaceChildren(...r.json.items.map((e) => historyRow(e, { queue: false,
    onRevert: (x) => revertTo(queue, x) })));
  if (!r.json.items.length) c.historyBody.append(el('tr', {}, el('td', { colspan: 6 }, 'No changes yet.')));
  markersChanged(c);
}
