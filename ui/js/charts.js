// charts.js — three charts per queue from GET /admin/runtime-scaling/history
// (the server samples every queue every 10 s and keeps 24 h), with the
// snapshot's values appended live between fetches:
//   - jobs: waiting (left axis) and active (right axis): separate scales,
//     because thousands waiting would flatten a handful active;
//   - throughput: done and failed jobs per second;
//   - concurrency per worker: desired against what the workers run, with
//     the number of workers on its own axis, and change markers.
// Missing samples are null and drawn as gaps. uPlot is the global the
// vendored IIFE defines (ui/vendor/uPlot.iife.min.js).
import { el, fmtHM } from './util.js';
import { call, state } from './state.js';
import { palette, onThemeChange } from './theme.js';

export const RANGES = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400 };
const RANGE_KEY = 'sluice-range';
const REFETCH_MS = 60000;          // history again every minute; snapshots fill in between
const LIVE_MIN_GAP_S = 2;          // at most one live point per snapshot period
const HEIGHT = 130;

export function currentRange() {
  let r = null;
  try { r = localStorage.getItem(RANGE_KEY); } catch { /* no storage */ }
  return RANGES[r] ? r : '1h';
}
export function setRange(r) {
  try { localStorage.setItem(RANGE_KEY, r); } catch { /* no storage */ }
  for (const c of state.cards.values()) loadChartHistory(c);
}

const compact = (v) => (v == null ? '' : Math.abs(v) >= 10000 ? `${Math.round(v / 1000)}k`
  : Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : Number.isInteger(v) ? String(v) : v.toFixed(1));

// y from 0 to a little above the highest value (never a range of nothing).
const fromZero = (u, min, max) => [0, max == null || max <= 0 ? 1 : Math.ceil(max * 1.1)];

function xAxis() {
  return {
    stroke: () => palette().axis, grid: { stroke: () => palette().grid, width: 1 },
    ticks: { stroke: () => palette().grid, width: 1 },
    // Whole minutes only: a fresh page never shows ":18.600".
    incrs: [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200],
    space: 56, size: 28,
    values: (u, splits) => splits.map((s) => fmtHM(s * 1000)),
  };
}
// Counts get whole-number ticks; rates may have fractions.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1e6];
function yAxis(label, { side = 3, scale = 'y', grid = true, whole = true } = {}) {
  return {
    ...(whole ? { incrs: WHOLE } : {}),
    scale, side, label, labelSize: 16, size: 44, labelFont: '11px system-ui, sans-serif',
    font: '11px system-ui, sans-serif',
    stroke: () => palette().axis, grid: { show: grid, stroke: () => palette().grid, width: 1 },
    ticks: { show: false }, values: (u, splits) => splits.map(compact),
  };
}
const line = (label, scale, color, extra = {}) =>
  ({ label, scale, stroke: () => palette()[color], width: 1.75, points: { show: false }, spanGaps: false, ...extra });

// Each chart: its uPlot options and how a point (of the history or of a
// snapshot) maps to its series.
const CHARTS = [
  { key: 'jobs', title: 'Jobs in the queue',
    series: [line('waiting (jobs)', 'waiting', 'waiting'), line('active (jobs)', 'active', 'active')],
    scales: { waiting: { range: fromZero }, active: { range: fromZero } },
    axes: [yAxis('waiting (jobs)', { scale: 'waiting' }), yAxis('active (jobs)', { scale: 'active', side: 1, grid: false })],
    fields: ['waiting', 'active'] },
  { key: 'rate', title: 'Throughput',
    series: [line('done (jobs/s)', 'rate', 'done'), line('failed (jobs/s)', 'rate', 'failed')],
    scales: { rate: { range: fromZero } },
    axes: [yAxis('jobs / s', { scale: 'rate', whole: false })],
    fields: ['done_per_s', 'failed_per_s'] },
  { key: 'conc', title: 'Concurrency per worker: desired and running',
    series: [line('desired (per worker)', 'conc', 'desired', { paths: null, width: 2 }),
      line('running (per worker, average)', 'conc', 'running'),
      line('workers', 'workers', 'workers', { dash: [4, 3], width: 1.25 })],
    scales: { conc: { range: fromZero }, workers: { range: fromZero } },
    axes: [yAxis('per worker', { scale: 'conc' }), yAxis('workers', { scale: 'workers', side: 1, grid: false })],
    fields: ['desired', 'running_per_worker', 'workers'], markers: true },
];

// Running per worker from the sum the server keeps: with 2 workers at 4
// each, "running" is 8 and desired is 4; per worker they meet.
const perWorker = (running, workers) => (running == null || !workers ? null : running / workers);

function emptyData() {
  return { t: [], waiting: [], active: [], done_per_s: [], failed_per_s: [], desired: [], running_per_worker: [], workers: [] };
}

export function makeCharts(card) {
  const ch = { data: emptyData(), markers: null, source: 'none', stepS: 10, plots: [], boxes: [], timer: null };
  ch.note = el('p', { class: 'chart-note', role: 'status' });
  ch.caption = el('p', { class: 'caption' });
  ch.root = el('div', { class: 'charts' }, ch.note);
  for (const spec of CHARTS) {
    const box = el('div', { class: 'chart', 'aria-hidden': 'true' });
    // The canvas says nothing to a screen reader: the summary says it in words.
    const summary = el('p', { class: 'sr-only' });
    const fig = el('figure', { class: `chart-fig chart-${spec.key}` }, el('figcaption', {}, spec.title), summary, box);
    ch.root.append(fig);
    const opts = {
      width: 400, height: HEIGHT,
      legend: { show: true, live: true },
      cursor: { y: false, points: { show: false } },
      scales: { x: { time: true, auto: false, range: () => xRange(ch) }, ...spec.scales },
      series: [{ label: 'time', value: (u, v) => (v == null ? '–' : fmtHM(v * 1000)) }, ...spec.series.map((s) => {
        const { paths, ...rest } = s;
        const out = { ...rest, value: (u, v) => (v == null ? '–' : compact(Math.round(v * 10) / 10)) };
        // desired is a step function: it holds until the next change.
        if (paths === null) out.paths = globalThis.uPlot.paths.stepped({ align: 1 });
        return out;
      })],
      axes: [xAxis(), ...spec.axes],
      hooks: { draw: [(u) => drawMarkers(u, card, Boolean(spec.markers)), (u) => axisLabels(u, fig)] },
    };
    const plot = new globalThis.uPlot(opts, [[], ...spec.fields.map(() => [])], box);
    plot.spec = spec;
    plot.summary = summary;
    ch.plots.push(plot);
    ch.boxes.push(box);
  }
  ch.root.append(ch.caption);
  // Follow the card's width (phones, window resizes, the overview filter).
  ch.resize = new ResizeObserver(() => requestAnimationFrame(() => sizeCharts(ch)));
  for (const b of ch.boxes) ch.resize.observe(b);
  card.charts = ch;
  return ch;
}

function sizeCharts(ch) {
  ch.plots.forEach((p, i) => {
    const w = Math.floor(ch.boxes[i].clientWidth);
    if (w > 0 && Math.abs(w - p.width) > 1) p.setSize({ width: w, height: HEIGHT });
  });
}

function xRange(ch) {
  const to = Date.now() / 1000;
  return [to - RANGES[currentRange()], to];
}

function redraw(ch) {
  const d = ch.data;
  const t = d.t.map((ms) => ms / 1000);
  const [from, to] = xRange(ch);
  for (const p of ch.plots) {
    p.setData([t, ...p.spec.fields.map((f) => d[f])]);
    p.summary.textContent = `${p.spec.title}, ${fmtHM(from * 1000)} to ${fmtHM(to * 1000)} local time: ` +
      p.spec.series.map((s, i) => {
        const vals = d[p.spec.fields[i]].filter((v) => v != null);
        return vals.length ? `${s.label} latest ${compact(vals[vals.length - 1])}, highest ${compact(Math.max(...vals))}`
          : `${s.label} no samples`;
      }).join('; ') + '.';
  }
}

// What the axes show, as drawn (the canvas keeps it to itself): the time
// ticks and the axis titles with their units, on the figure for tests and
// tools (data-x-ticks="14:00 14:15", data-axes="waiting (jobs)|active (jobs)").
function axisLabels(u, fig) {
  const ticks = (u.axes[0]._values || []).filter((v) => v != null && v !== '');
  fig.dataset.xTicks = ticks.join(' ');
  fig.dataset.axes = u.axes.slice(1).map((a) => a.label).join('|');
}

// Vertical dashed lines where the desired concurrency changed; on the
// concurrency chart with "from → to" beside them.
function drawMarkers(u, card, labels = true) {
  const ch = card.charts;
  if (!ch) return;
  const marks = ch.markers ?? (state.history.get(card.queue) || [])
    .filter((e) => e.kind !== 'flag' && e.outcome === 'applied' && e.from !== e.to)
    .map((e) => ({ at_ms: new Date(e.at).getTime(), from: e.from, to: e.to }));
  const ctx = u.ctx;
  const pal = palette();
  const dpr = devicePixelRatio || 1;
  ctx.save();
  ctx.strokeStyle = pal.marker;
  ctx.fillStyle = pal.marker;
  ctx.lineWidth = dpr;
  ctx.setLineDash([4 * dpr, 3 * dpr]);
  ctx.font = `${10 * dpr}px system-ui, sans-serif`;
  // Newest first: when changes crowd together, only the newest is labelled.
  let lastLabel = Infinity;
  for (const m of [...marks].sort((a, b) => b.at_ms - a.at_ms)) {
    const x = u.valToPos(m.at_ms / 1000, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    if (labels && lastLabel - x > 44 * dpr) {
      const text = `${m.from}→${m.to}`;
      const w = ctx.measureText(text).width;
      // Left of the line when there is no room on its right.
      const tx = x + 3 * dpr + w > u.bbox.left + u.bbox.width ? x - 3 * dpr - w : x + 3 * dpr;
      ctx.fillText(text, tx, u.bbox.top + 10 * dpr);
      lastLabel = x;
    }
  }
  ctx.restore();
}

// The history of one queue for the chosen range. While the server has no
// history route (404 not_found: a sluiced from before issue 17), the charts
// show what this page has seen since it opened, and say so.
export async function loadChartHistory(card) {
  const ch = card.charts;
  const range = currentRange();
  clearTimeout(ch.timer);
  ch.timer = setTimeout(() => loadChartHistory(card), REFETCH_MS);
  const r = await call('GET', `/admin/runtime-scaling/history?queue=${encodeURIComponent(card.queue)}&range=${range}`);
  if (range !== currentRange()) return;          // a newer choice is on its way
  if (r.status === 200 && r.json?.series) {
    const s = r.json.series;
    const d = emptyData();
    d.t = s.t.slice();
    d.waiting = s.waiting.slice();
    d.active = s.active.slice();
    d.done_per_s = s.done_per_s.slice();
    d.failed_per_s = s.failed_per_s.slice();
    d.desired = s.desired.slice();
    d.workers = s.workers.slice();
    d.running_per_worker = s.running.map((v, i) => perWorker(v, s.workers[i]));
    ch.data = d;
    ch.markers = r.json.markers || [];
    ch.stepS = r.json.step_s || 10;
    ch.source = 'history';
    ch.historyError = null;
  } else if (r.status === 404 && r.json?.error?.code === 'not_found') {
    ch.source = 'local';
    ch.markers = null;
    clearTimeout(ch.timer);                     // nothing to fetch again
  } else if (r.status === 401) {
    return;                                     // the live stream notices and logs out
  } else {
    ch.historyError = r.json?.error?.message || `the server answered ${r.status}`;
    if (ch.source !== 'history') ch.source = 'local';
  }
  trim(ch);
  redraw(ch);
  describe(card);
}

function trim(ch) {
  const from = Date.now() - RANGES[currentRange()] * 1000;
  let n = 0;
  while (n < ch.data.t.length && ch.data.t[n] < from) n++;
  if (n) for (const k of Object.keys(ch.data)) ch.data[k].splice(0, n);
}

// One snapshot's values as a point. Redis down: depth and rates are not
// known, so null (a gap), never the last value again.
export function appendSnapshot(card, q, snap) {
  const ch = card.charts;
  if (!ch || ch.source === 'none') return;
  const at = new Date(snap.generated_at).getTime() || Date.now();
  const d = ch.data;
  if (d.t.length && at - d.t[d.t.length - 1] < LIVE_MIN_GAP_S * 1000) return;
  const redisUp = snap.redis !== 'down';
  const rates = redisUp && q.rates && q.rates.window_s > 0 ? q.rates : null;
  d.t.push(at);
  d.waiting.push(redisUp ? q.depth?.waiting ?? null : null);
  d.active.push(redisUp ? q.depth?.active ?? null : null);
  d.done_per_s.push(rates ? rates.completed_per_s : null);
  d.failed_per_s.push(rates ? rates.failed_per_s : null);
  d.desired.push(q.desired_concurrency ?? null);
  d.workers.push(redisUp ? q.worker_count : null);
  d.running_per_worker.push(redisUp ? perWorker(q.active_concurrency, q.worker_count) : null);
  trim(ch);
  redraw(ch);
  describe(card, snap);
}

// The line above the charts: what is missing and why, so an empty chart
// is never a mystery.
function describe(card, snap = state.snap) {
  const ch = card.charts;
  const notes = [];
  if (snap?.redis === 'down') notes.push('Redis is not answering: no new depth, throughput or worker samples until it is back (the gap in the lines).');
  if (ch.source === 'local') notes.push('This server keeps no history: the charts show only what this page has seen since it was opened.');
  if (ch.historyError) notes.push(`The history could not be loaded: ${ch.historyError}.`);
  ch.note.textContent = notes.join(' ');
  ch.note.hidden = notes.length === 0;
  ch.caption.textContent = `Last ${currentRange()}${ch.source === 'history' ? `, one point per ${ch.stepS} s` : ''}; ` +
    'dashed vertical lines mark changes of the desired concurrency; gaps are times without samples.';
}

export function redrawAll() {
  for (const c of state.cards.values()) c.charts?.plots.forEach((p) => p.redraw(false, true));
}
onThemeChange(() => {
  // Axis colours are read while drawing; a full redraw picks the new ones.
  for (const c of state.cards.values()) if (c.charts) redraw(c.charts);
});

export function markersChanged(card) {
  card.charts?.plots.forEach((p) => p.redraw(false, false));
}
