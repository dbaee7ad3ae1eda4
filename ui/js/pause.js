// pause.js — a queue's pause: the "Paused" banner (who, since when, until
// when, why) and the Pause / Resume buttons for principals with
// scaling:write. Both go through the confirmation dialog, which asks for a
// reason (required) and, for a pause, how long. A paused queue's workers
// take no new jobs and finish the ones they run; desired is kept.
import { el, fmtHM, fmtSpan } from './util.js';
import { state, call, canWrite } from './state.js';
import { confirmDialog } from './controls.js';

export function makePause(c) {
  c.pauseBox = el('div', { class: 'pause-box', hidden: true });
  return c.pauseBox;
}

export function renderPause(c, q) {
  const writer = canWrite();
  c.root.classList.toggle('is-paused', q.paused === true);
  if (q.paused) {
    const until = q.paused_until ? Date.parse(q.paused_until) : null;
    const left = until ? (until - Date.now()) / 1000 : null;
    c.pauseBox.className = 'pause-box paused';
    c.pauseBox.hidden = false;
    c.pauseBox.replaceChildren(
      el('span', {}, el('strong', {}, 'Paused: '),
        'workers take no new jobs; running ones finish. ',
        `By ${q.paused_by ?? '–'}${q.paused_at ? ` at ${fmtHM(Date.parse(q.paused_at))}` : ''}`,
        until ? `, until ${fmtHM(until)}` : ', until resumed',
        until ? el('span', { class: 'muted' }, left > 0 ? ` (in ${fmtSpan(left)})` : ' (ending now)') : '',
        q.paused_reason ? `: ${q.paused_reason}` : ''),
      writer ? el('button', { type: 'button', class: 'small', onclick: () => resume(c, q) }, 'Resume') : '');
  } else {
    c.pauseBox.className = 'pause-box';
    c.pauseBox.hidden = !writer;
    c.pauseBox.replaceChildren(...(writer ? [
      el('span', { class: 'muted' }, 'Running. A pause stops new jobs, whatever the minimum says.'),
      el('button', { type: 'button', class: 'small', onclick: () => pause(c, q) }, 'Pause…')] : []));
  }
}

// POST pause or resume; the answer goes where the card's changes report.
async function post(c, verb, body, busyText) {
  const out = c.result;
  out.className = 'result';
  out.setAttribute('role', 'status');
  out.textContent = busyText;
  const r = await call('POST', `/api/v1/scaling/${encodeURIComponent(c.queue)}/${verb}`, { ...body, wait_ms: 5000 });
  if (r.status === 401) { state.onSessionEnd?.(); return; }
  if (r.status === 200) {
    const acks = r.json.acks;
    out.className = 'result ok';
    out.textContent = (r.json.changed ? `${verb === 'pause' ? 'Paused' : 'Resumed'} ${c.queue} (version ${r.json.version}).`
      : `${c.queue} was already ${verb === 'pause' ? 'paused' : 'running'}: nothing changed.`) +
      (acks && r.json.changed ? ` ${acks.acknowledged} of ${acks.expected} workers acknowledged${acks.complete ? '.' : ' before the wait ended.'}` : '');
    if (r.json.version !== c.version) c.versionChangedAt = Date.now();
  } else {
    out.className = 'result error';
    out.setAttribute('role', 'alert');
    out.textContent = `Refused: ${r.json?.error?.message || `the server answered ${r.status}.`}`;
  }
  state.onChanged?.(c.queue);
}

async function pause(c, q) {
  const ans = await confirmDialog(`Pause ${c.queue}? Its workers stop taking new jobs and finish the ones they run, ` +
    `whatever the minimum says. The desired concurrency (${q.desired_concurrency}) is kept for the resume.`,
  { reason: '', ok: 'Pause', duration: true, title: `Pause ${c.queue}` });
  if (!ans.ok) return;
  await post(c, 'pause', { reason: ans.reason, ...(ans.duration ? { duration_s: ans.duration } : {}) },
    'Pausing and waiting for the workers to acknowledge…');
}

async function resume(c, q) {
  const ans = await confirmDialog(`Resume ${c.queue}? Its workers take jobs again, at ${q.desired_concurrency} each.`,
    { reason: '', ok: 'Resume', title: `Resume ${c.queue}` });
  if (!ans.ok) return;
  await post(c, 'resume', { reason: ans.reason }, 'Resuming…');
}
