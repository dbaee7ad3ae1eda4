// autoscale.js — the "Autoscaler" block of a queue card (issue 19): the
// rule's state (on, dry run, held until when and why, next evaluation),
// its last decision and why, the recent decisions (a dry run's proposals
// marked as such), and Hold… / Release for principals with scaling:write,
// through the confirmation dialog (a reason always; a duration for a hold).
//
// It reads GET /api/v1/autoscalers on login, every 5 s and after every
// change event (a person's change holds the rule: the block says so at once).
// A queue without a rule has no block; neither does any queue of a server
// that answers 404 for the route (older than issue 19): the page then asks
// again only once a minute, in case the server is upgraded under it.
import { el, fmtHM, fmtSpan, fmtWhen, fmtDateTime } from './util.js';
import { state, call, canWrite } from './state.js';
import { confirmDialog } from './controls.js';

const REFRESH_MS = 5000;
const ABSENT_MS = 60000;
const view = { seq: 0, timer: null, items: new Map(), absent: false, lastAbsentCheck: 0, leader: true };

// How long a hold may last; the API takes 1 s to 7 days.
const HOLD_DURATIONS = [['900', '15 minutes'], ['3600', '1 hour'], ['7200', '2 hours'], ['28800', '8 hours'],
  ['86400', '1 day'], ['604800', '7 days']];

// ---- what a decision says --------------------------------------------------------------

const n = (x) => (x == null ? '–' : String(x));

// A decision in words: what the rule proposed and what became of it.
export function decisionText(d) {
  const p = d.proposal;
  const to = d.to ?? p;
  switch (d.outcome) {
    case 'applied': return `applied ${n(d.from)} → ${n(to)}${p != null && p !== to ? ` (proposed ${p})` : ''}`;
    case 'rejected': return `refused${d.error_code ? ` (${d.error_code})` : ''}: proposed ${n(p)}` +
      `${d.message ? ` — ${d.message}` : ''}`;
    case 'unchanged': return `unchanged at ${n(d.from)}`;
    case 'dry_run': return to === d.from ? `dry run: would keep ${n(d.from)}`
      : `dry run: would set ${n(d.from)} → ${n(to)}${p != null && p !== to ? ` (proposed ${p})` : ''}`;
    case 'held': return `held: proposed ${n(p)}, kept ${n(d.from)}`;
    case 'stabilizing': return `stabilizing: proposed ${n(p)}, keeps ${n(to ?? d.from)} for the scale-down window`;
    case 'error': return `rule error${d.message ? `: ${d.message}` : ''}`;
    case 'no_opinion': return `no opinion: kept ${n(d.from)}`;
    default: return `${d.outcome}: proposed ${n(p)}`;
  }
}

// The engine's note on any other outcome (stepped, capped, the scale-down
// window, what a dry run's safeguards would say), after the decision.
const note = (d) => (d.message && d.outcome !== 'rejected' && d.outcome !== 'error'
  ? el('span', { class: 'auto-msg' }, ` (${d.message})`) : '');

const OUTCOME_CLASS = { applied: 'ok', rejected: 'bad', error: 'bad', dry_run: 'dry', held: 'warn', stabilizing: 'warn' };

// ---- the block ---------------------------------------------------------------------------

// Built once per card and updated in place, so focus and an open list of
// decisions survive the polls.
export function makeAutoscale(c) {
  const a = {};
  const id = `auto-${c.queue}`.replace(/[^A-Za-z0-9_-]/g, '_');
  a.chip = el('span', { class: 'chip' });
  a.rule = el('p', { class: 'auto-rule muted' });
  a.next = el('span');
  a.hold = el('p', { class: 'auto-hold', hidden: true });
  a.error = el('p', { class: 'auto-error', hidden: true });
  a.last = el('p', { class: 'auto-last' });
  a.leader = el('p', { class: 'muted auto-note', hidden: true });
  a.body = el('tbody');
  a.details = el('details', { class: 'auto-decisions' }, el('summary', {}, 'Recent decisions'),
    el('div', { class: 'scroll' }, el('table', { class: 'history' },
      el('caption', { class: 'sr-only' }, `Recent autoscaler decisions of ${c.queue}, newest first`),
      el('thead', {}, el('tr', {}, ...['When', 'Decision', 'Reason'].map((h) => el('th', { scope: 'col' }, h)))),
      a.body)));
  a.holdBtn = el('button', { type: 'button', class: 'small', onclick: () => hold(c) }, 'Hold…');
  a.releaseBtn = el('button', { type: 'button', class: 'small', onclick: () => release(c), hidden: true }, 'Release');
  a.buttons = el('div', { class: 'auto-buttons' }, a.holdBtn, a.releaseBtn);
  a.result = el('p', { class: 'result', role: 'status' });
  a.root = el('section', { class: 'autoscale', hidden: true, 'aria-labelledby': `${id}-title` },
    el('h3', { class: 'sub', id: `${id}-title` }, 'Autoscaler'),
    el('div', { class: 'auto-head' }, a.chip, el('span', { class: 'auto-next' }, a.next)),
    a.rule, a.hold, a.error, a.last, a.leader, a.details, a.buttons, a.result);
  c.auto = a;
  return a.root;
}

// The browser's time of a server instant: measured from the snapshot's own
// generated_at, so a skew between the two clocks cancels.
function localMs(iso) {
  const t = Date.parse(iso);
  const snap = state.snap;
  if (!snap?.generated_at || !state.snapAt) return t;
  return t + (state.snapAt - Date.parse(snap.generated_at));
}

function renderNext(c) {
  const a = c.auto, it = a?.item;
  if (!it) return;
  if (!it.next_evaluation_at) { a.next.textContent = view.leader ? 'next evaluation: not scheduled' : ''; return; }
  const at = localMs(it.next_evaluation_at);
  const left = Math.ceil((at - Date.now()) / 1000);
  a.next.textContent = `next evaluation ${fmtHM(at)}:${String(new Date(at).getSeconds()).padStart(2, '0')}` +
    (left > 0 ? ` (in ${fmtSpan(left)})` : ' (due now)');
}

function renderItem(c, it) {
  const a = c.auto;
  a.item = it;
  a.root.hidden = !it;
  if (!it) return;
  const held = it.held_until != null;
  const mode = it.enabled === false ? 'off' : it.dry_run ? 'dry run' : held ? 'held' : 'on';
  a.chip.className = `chip auto-${mode.replace(/ /g, '-')}`;
  a.chip.textContent = mode === 'dry run' ? 'dry run: proposes, never applies'
    : mode === 'held' ? 'held: evaluates, applies nothing' : mode;
  a.rule.textContent = `Every ${fmtSpan(it.every_s)}; scale-down waits ${fmtSpan(it.scale_down_window_s)}; ` +
    `a manual change holds it ${fmtSpan(it.hold_after_manual_s)}; ` +
    (it.allow_above_confirm ? 'may go above confirm_above.' : 'stays at or below confirm_above and approve_above.');
  renderNext(c);
  // The hold: after a human change, or asked for.
  a.hold.hidden = !held;
  if (held) {
    const h = it.hold || {};
    const until = localMs(h.until || it.held_until);
    const left = (until - Date.now()) / 1000;
    a.hold.replaceChildren(el('strong', {}, 'Held '), `until ${fmtWhen(new Date(until).toISOString())}`,
      el('span', { class: 'muted' }, left > 0 ? ` (in ${fmtSpan(left)})` : ' (ending now)'),
      h.kind === 'manual_change' ? ` after a manual change${h.by ? ` by ${h.by}` : ''}` : h.by ? ` by ${h.by}` : '',
      h.reason ? `: ${h.reason}` : '', '. The rule still evaluates and shows what it would do.');
  }
  a.error.hidden = !it.error;
  if (it.error) {
    a.error.textContent = `Rule error${it.error.at ? ` at ${fmtWhen(it.error.at)}` : ''}: ${it.error.message}. ` +
      'Nothing was applied; the rule keeps its schedule.';
  }
  const d = it.last_decision;
  a.last.replaceChildren(el('strong', {}, 'Last decision: '), ...(d
    ? [el('time', { datetime: d.at, title: fmtDateTime(d.at) }, fmtWhen(d.at)), ' ',
      el('span', { class: `auto-outcome o-${d.outcome}` }, decisionText(d)), note(d),
      ...(d.reason ? [' — ', el('q', {}, d.reason)] : [])]
    : ['none yet.']));
  a.leader.hidden = view.leader;
  a.leader.textContent = 'This replica is not the leader: it shows the state the leader stored last.';
  const rows = (it.decisions || []).map((x) => el('tr', { class: `d-${x.outcome}` },
    el('td', { class: 'when' }, el('time', { datetime: x.at, title: fmtDateTime(x.at) }, fmtWhen(x.at))),
    el('td', { class: `change o-${OUTCOME_CLASS[x.outcome] || 'plain'}` }, decisionText(x), note(x)),
    el('td', { class: 'reason' }, x.reason || '')));
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 3 }, 'No decision yet.')));
  a.body.replaceChildren(...rows);
  // A dry run exists to be read: its proposals show without a click, once.
  if (it.dry_run && !a.openedOnce) { a.details.open = true; a.openedOnce = true; }
  const writer = canWrite();
  a.buttons.hidden = !writer;
  a.releaseBtn.hidden = !held;
}

// Every card: its rule's item, or no block.
function renderAll() {
  for (const c of state.cards.values()) {
    if (!c.auto) continue;
    renderItem(c, view.absent ? null : view.items.get(c.queue) || null);
  }
}

// A card made after the last poll shows what is known at once.
export function showAutoscale(c) {
  if (c.auto) renderItem(c, view.absent ? null : view.items.get(c.queue) || null);
}

export async function loadAutoscalers() {
  if (!state.who) return;
  if (view.absent && Date.now() - view.lastAbsentCheck < ABSENT_MS) return;
  const mine = ++view.seq;
  const r = await call('GET', '/api/v1/autoscalers');
  if (mine !== view.seq) return;
  if (r.status === 404) {
    // An older server: no route, no rules, no block.
    view.absent = true;
    view.lastAbsentCheck = Date.now();
    view.items.clear();
    renderAll();
    return;
  }
  if (r.status !== 200) return;            // a blip: keep what is shown until the next poll
  view.absent = false;
  view.leader = r.json.leader !== false;
  view.items = new Map((r.json.items || []).map((x) => [x.queue, x]));
  renderAll();
}

// ---- Hold… and Release -----------------------------------------------------------------

function say(c, text, kind = '') {
  const out = c.auto.result;
  out.className = `result ${kind}`.trim();
  out.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  out.textContent = text;
}

async function post(c, verb, body) {
  const r = await call('POST', `/api/v1/autoscalers/${encodeURIComponent(c.queue)}/${verb}`, body);
  if (r.status === 401) { state.onSessionEnd?.(); return; }
  if (r.status === 200) {
    view.items.set(c.queue, r.json);
    renderItem(c, r.json);
    say(c, verb === 'hold'
      ? `Held: the autoscaler of ${c.queue} applies nothing until ${fmtHM(localMs(r.json.held_until))}.`
      : `Released: the autoscaler of ${c.queue} applies its decisions again.`, 'ok');
  } else {
    say(c, `Refused: ${r.json?.error?.message || `the server answered ${r.status}.`}`, 'error');
  }
  loadAutoscalers();
}

async function hold(c) {
  const ans = await confirmDialog(`Hold the autoscaler of ${c.queue}? It keeps evaluating its rule and shows what ` +
    'it would do, but changes nothing until the hold ends or someone releases it. Manual changes still work.',
  { reason: '', ok: 'Hold', duration: { options: HOLD_DURATIONS, value: '3600' }, title: `Hold the autoscaler of ${c.queue}` });
  if (!ans.ok) { say(c, 'Not changed.'); return; }
  say(c, 'Holding…');
  await post(c, 'hold', { duration_s: ans.duration, reason: ans.reason });
}

async function release(c) {
  const ans = await confirmDialog(`Release the autoscaler of ${c.queue}? Its next evaluation applies its decision ` +
    'through every safeguard, as before the hold.', { reason: '', ok: 'Release', title: `Release the autoscaler of ${c.queue}` });
  if (!ans.ok) { say(c, 'Not changed.'); return; }
  say(c, 'Releasing…');
  await post(c, 'release', { reason: ans.reason });
}

// ---- lifecycle -----------------------------------------------------------------------------

// On login: load now and every 5 s; the next-evaluation countdown runs every second.
export function startAutoscalers() {
  clearInterval(view.timer);
  view.absent = false;
  view.items.clear();
  loadAutoscalers();
  view.timer = setInterval(() => { if (state.who) loadAutoscalers(); }, REFRESH_MS);
}

setInterval(() => { for (const c of state.cards.values()) if (c.auto?.item) renderNext(c); }, 1000);
