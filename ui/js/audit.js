// audit.js — "History, all queues": the audit log with dates, filters
// (queue, actor, outcome, source, kind, dates), paging with next_before,
// request ids, flag changes and policy reloads. Also the row format the
// cards' own histories use.
import { $, el, fmtDateTime, fmtWhen } from './util.js';
import { call, canWrite, queueOf } from './state.js';
import { revertTo } from './controls.js';

const PAGE = 30;
const FILTERS = ['queue', 'actor', 'outcome', 'source', 'kind', 'since', 'until'];

function changeText(e) {
  if (e.kind === 'flag') return `flag ${e.flag}: ${e.from ? 'on' : 'off'} → ${e.to ? 'on' : 'off'}`;
  if (e.kind === 'policy') return `policy ${e.action || 'reload'}`;
  if (e.kind === 'pause') return e.to ? 'paused (workers take no new jobs)' : 'resumed';
  if (e.kind === 'audit') return `audit ${e.action || ''}${e.deleted != null ? `: ${e.deleted} entries deleted` : ''}`;
  return `${e.from} → ${e.to}`;
}

const OUTCOMES = { applied: 'applied', pending_approval: 'waits for approval', approved: 'approved',
  expired: 'approval expired' };

// onRevert(entry): offered to whoever may write on applied changes of a
// queue that set another value than the one in force (a pause makes a
// version of its own, so the version alone does not tell).
export function historyRow(e, { queue = true, requestId = false, onRevert = null } = {}) {
  const outcome = OUTCOMES[e.outcome] ?? (e.error_code === 'approval_rejected' ? 'approval rejected'
    : `refused${e.error_code ? ` (${e.error_code})` : ''}`);
  const revert = onRevert && e.kind === 'scaling' && e.outcome === 'applied' && e.version > 0 && canWrite() &&
    queueOf(e.queue) && queueOf(e.queue).desired_concurrency !== e.to
    ? el('button', { type: 'button', class: 'small revert', onclick: () => onRevert(e),
      'aria-label': `Revert to this: ${e.queue} version ${e.version} (${e.to})` }, 'Revert to this') : null;
  return el('tr', { class: `${e.outcome} kind-${e.kind}` },
    el('td', { title: e.at, class: 'when' }, el('time', { datetime: e.at }, queue ? fmtDateTime(e.at) : fmtWhen(e.at))),
    // data-label: on a phone the rows are blocks, and these say what is what.
    el('td', { 'data-label': 'by' }, e.actor),
    queue ? el('td', { 'data-label': 'queue' }, e.queue ?? '–') : null,
    el('td', { class: 'change' }, changeText(e)), el('td', { class: 'reason' }, e.reason),
    el('td', { 'data-label': 'via' }, e.source), el('td', { class: 'outcome' }, outcome, revert ? ' ' : null, revert),
    requestId ? el('td', { class: 'rid', 'data-label': 'request' }, el('code', {}, e.request_id || '')) : null);
}

// seq: only the newest request may draw. Loads overlap (a live change
// refreshes the page while the operator picks a filter), and an older
// answer arriving last would show rows the filters no longer ask for.
const view = { before: null, pages: [], clientFilter: false, seq: 0 };

function filters() {
  const f = {};
  for (const k of FILTERS) {
    const v = $(`#f-${k}`)?.value.trim();
    if (!v) continue;
    // Dates are picked in local time; the API takes RFC 3339.
    f[k] = k === 'since' ? new Date(`${v}T00:00:00`).toISOString()
      : k === 'until' ? new Date(`${v}T23:59:59.999`).toISOString() : v;
  }
  return f;
}

// An older server knows only limit and before (400 invalid_field for a
// filter): the page then filters what it gets, and says so.
function matches(e, f) {
  if (f.queue && e.queue !== f.queue) return false;
  if (f.actor && e.actor !== f.actor) return false;
  if (f.outcome && e.outcome !== f.outcome) return false;
  if (f.source && e.source !== f.source) return false;
  if (f.kind && e.kind !== f.kind) return false;
  if (f.since && e.at < f.since) return false;
  if (f.until && e.at > f.until) return false;
  return true;
}

export async function loadAudit({ before = view.before } = {}) {
  const f = filters();
  const q = new URLSearchParams();
  q.set('limit', String(view.clientFilter ? 500 : PAGE));
  if (before != null) q.set('before', String(before));
  if (!view.clientFilter) for (const [k, v] of Object.entries(f)) if (k !== 'queue') q.set(k, v);
  // One queue: its own route, which a scaling:read token may read.
  const path = f.queue ? `/api/v1/scaling/${encodeURIComponent(f.queue)}/history` : '/api/v1/audit';
  const mine = ++view.seq;
  const r = await call('GET', `${path}?${q}`);
  if (mine !== view.seq) return;
  const body = $('#audit tbody');
  const note = $('#audit-note');
  if (r.status === 400 && r.json?.error?.code === 'invalid_field' && FILTERS.includes(r.json.error.details?.field) && !view.clientFilter) {
    view.clientFilter = true;
    return loadAudit({ before });
  }
  if (r.status === 403) {
    body.replaceChildren();
    note.textContent = 'The history of all queues needs a wider scope than yours: pick a queue.';
    return;
  }
  if (r.status !== 200) {
    note.textContent = `The history could not be loaded: ${r.json?.error?.message || `the server answered ${r.status}`}.`;
    return;
  }
  view.before = before;
  view.next = r.json.next_before;
  const items = view.clientFilter ? r.json.items.filter((e) => matches(e, f)) : r.json.items;
  body.replaceChildren(...items.map((e) => historyRow(e, { queue: true, requestId: true,
    onRevert: (x) => revertTo(x.queue, x) })));
  if (!items.length) body.append(el('tr', {}, el('td', { colspan: 8 }, 'No entries match.')));
  note.textContent = view.clientFilter && Object.keys(f).length
    ? 'This server does not filter the history: the filters apply to the 500 entries of each page.' : '';
  $('#audit-older').disabled = view.next == null;
  $('#audit-newer').disabled = view.pages.length === 0;
  $('#audit-page').textContent = view.pages.length ? `page ${view.pages.length + 1}` : 'newest';
}

export function initAudit() {
  const form = $('#audit-filters');
  const reload = () => { view.pages = []; loadAudit({ before: null }); };
  form.addEventListener('submit', (e) => { e.preventDefault(); reload(); });
  form.addEventListener('change', reload);
  form.addEventListener('reset', () => setTimeout(reload));
  $('#audit-older').addEventListener('click', () => {
    if (view.next == null) return;
    view.pages.push(view.before);
    loadAudit({ before: view.next });
  });
  $('#audit-newer').addEventListener('click', () => loadAudit({ before: view.pages.pop() ?? null }));
}

// The queue filter lists the declared queues.
export function setAuditQueues(names) {
  const sel = $('#f-queue');
  const have = [...sel.options].map((o) => o.value).slice(1).join(',');
  if (have === names.join(',')) return;
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '' }, 'all queues'), ...names.map((n) => el('option', { value: n }, n)));
  sel.value = names.includes(keep) ? keep : '';
}

// Live: a change refreshes the newest page, never one the operator paged to.
export function auditChanged() {
  if (view.before == null) loadAudit({ before: null });
}

