// overview.js — every queue in one table above the cards: status at a
// glance, sortable columns, a search box and a status filter. The filter
// also hides the cards it leaves out, so a phone shows only what matters.
import { $, el, fmtRate, num } from './util.js';
import { state, statuses } from './state.js';

const COLS = [
  { key: 'queue', label: 'Queue', get: (q) => q.queue },
  { key: 'status', label: 'Status', get: (q, c) => rank(statuses(q, c)) },
  { key: 'desired', label: 'Desired', get: (q) => q.desired_concurrency ?? -1 },
  { key: 'running', label: 'Running', get: (q) => q.active_concurrency },
  { key: 'workers', label: 'Workers', get: (q) => q.worker_count },
  { key: 'waiting', label: 'Waiting', get: (q) => q.depth?.waiting ?? -1, narrow: true },
  { key: 'done', label: 'Done / s', get: (q) => q.rates?.completed_per_s ?? -1, narrow: true },
  { key: 'pending', label: 'Pending', get: (q) => q.pending_updates, narrow: true },
];
const ORDER = ['alerts', 'out of bounds', 'paused', 'mismatch', 'pending', 'ok'];
const rank = (s) => Math.min(...s.map((x) => ORDER.indexOf(x)));

const view = { sort: 'status', dir: 1 };

export function initOverview() {
  const head = $('#overview thead tr');
  head.replaceChildren(...COLS.map((c) => el('th', { scope: 'col', class: c.narrow ? 'wide-only' : '', 'data-key': c.key },
    el('button', { type: 'button', class: 'sort', onclick: () => {
      view.dir = view.sort === c.key ? -view.dir : 1;
      view.sort = c.key;
      renderOverview();
    } }, c.label))));
  $('#ov-search').addEventListener('input', renderOverview);
  $('#ov-filter').addEventListener('change', renderOverview);
}

function visible(q, c) {
  const text = $('#ov-search').value.trim().toLowerCase();
  const f = $('#ov-filter').value;
  if (text && !q.queue.toLowerCase().includes(text)) return false;
  const s = statuses(q, c);
  if (f === 'attention') return !s.includes('ok');
  return !f || s.includes(f);
}

export function renderOverview() {
  const snap = state.snap;
  if (!snap) return;
  const col = COLS.find((c) => c.key === view.sort) || COLS[1];
  const redisUp = snap.redis !== 'down';
  const rows = snap.queues.map((q, i) => ({ q, i, c: state.cards.get(q.queue) }));
  rows.sort((a, b) => {
    const x = col.get(a.q, a.c), y = col.get(b.q, b.c);
    return (x < y ? -1 : x > y ? 1 : a.i - b.i) * view.dir;
  });
  let shown = 0;
  const body = rows.map(({ q, c }) => {
    const vis = visible(q, c);
    if (c) c.root.hidden = !vis;
    if (!vis) return null;
    shown++;
    const s = statuses(q, c);
    return el('tr', { class: s.includes('ok') ? '' : 'attention' },
      el('th', { scope: 'row' }, el('a', { href: `#queue-${q.queue}` }, q.queue)),
      el('td', {}, ...s.map((x) => el('span', { class: `chip s-${x.replace(/ /g, '-')}` }, x))),
      el('td', {}, num(q.desired_concurrency)), el('td', {}, num(q.active_concurrency)), el('td', {}, num(q.worker_count)),
      el('td', { class: 'wide-only' }, redisUp ? num(q.depth?.waiting) : '–'),
      el('td', { class: 'wide-only' }, redisUp ? fmtRate(q.rates?.completed_per_s) : '–'),
      el('td', { class: 'wide-only' }, num(q.pending_updates)));
  }).filter(Boolean);
  if (!shown) body.push(el('tr', {}, el('td', { colspan: COLS.length }, 'No queue matches.')));
  $('#overview tbody').replaceChildren(...body);
  for (const th of $('#overview thead tr').children) {
    th.setAttribute('aria-sort', th.dataset.key === view.sort ? (view.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  const attention = snap.queues.filter((q) => !statuses(q, state.cards.get(q.queue)).includes('ok')).length;
  $('#ov-summary').textContent = `${snap.queues.length} queue${snap.queues.length === 1 ? '' : 's'}, ` +
    `${attention} need${attention === 1 ? 's' : ''} attention.`;
}
