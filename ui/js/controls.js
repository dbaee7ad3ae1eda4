// controls.js — changing a queue. Before Apply the card shows what a change
// can do right now (reachable range, cooldown with a live countdown, budget
// left) and disables Apply, with the reason, for a value the server would
// refuse; it never asks to confirm such a change. The server still judges:
// its refusal, if it comes anyway, is shown as it is.
import { $, el, fmtHM, fmtDateTime, clamp } from './util.js';
import { state, call, canWrite, queueOf } from './state.js';

// What a change can do now. From `change_window` (issue 17) when the server
// sends it. Without it the page knows the step rule (bounds and max_step
// around the current value) but not the cooldown or the budget: those
// parts are hidden, and the server's refusal says them.
export function changeWindow(q) {
  const b = q.bounds || {};
  const cur = q.desired_concurrency;
  const w = q.change_window;
  if (w) {
    // The deadline in this browser's clock: the server's next_change_at
    // measured from the snapshot's own generated_at, so clock skew cancels.
    let deadline = null;
    if (w.next_change_at && state.snap?.generated_at) {
      deadline = state.snapAt + (Date.parse(w.next_change_at) - Date.parse(state.snap.generated_at));
    } else if (w.cooldown_remaining_s > 0) deadline = state.snapAt + w.cooldown_remaining_s * 1000;
    return { min: w.reachable_min, max: w.reachable_max, confirmAbove: w.confirm_above ?? b.confirm_above ?? null,
      deadline, budgetLeft: w.budget_left ?? null, perHour: w.changes_per_hour ?? b.changes_per_hour ?? null,
      cooldownS: w.cooldown_remaining_s ?? 0, known: true };
  }
  const lo = cur == null ? b.min : Math.max(b.min, cur - b.max_step);
  const hi = cur == null ? b.max : Math.min(b.max, cur + b.max_step);
  return { min: lo, max: hi, confirmAbove: b.confirm_above ?? null, deadline: null, budgetLeft: null,
    perHour: b.changes_per_hour ?? null, cooldownS: null, known: false };
}

const secondsLeft = (w) => (w.deadline == null ? 0 : Math.max(0, Math.ceil((w.deadline - Date.now()) / 1000)));

// Would the server take this value now? { ok, why }.
export function gate(q, text) {
  const b = q.bounds || {};
  const v = Number(text);
  if (String(text).trim() === '' || !Number.isInteger(v)) return { ok: false, why: 'Enter a whole number.' };
  if (v < b.min || v > b.max) return { ok: false, why: `Choose a value between ${b.min} and ${b.max}: the policy allows no other.` };
  const cur = q.desired_concurrency;
  if (cur != null && v === cur) return { ok: true, v };       // a no-op is always accepted
  const w = changeWindow(q);
  if (cur != null && (v < w.min || v > w.max)) {
    return { ok: false, why: `At most ${b.max_step} per change from ${cur}: choose between ${w.min} and ${w.max} now, and go further in steps.` };
  }
  // A spent budget also sets next_change_at (when the oldest change of the
  // hour leaves it): say the budget, not a cooldown the queue may not have.
  if (w.budgetLeft === 0) {
    return { ok: false, why: `The budget of ${w.perHour} changes per hour is used up` +
      (w.deadline ? `; the next change is possible at ${fmtHM(w.deadline)}.` : '.') };
  }
  const left = secondsLeft(w);
  if (left > 0) return { ok: false, why: `Cooldown: the next change is possible in ${left} s.`, cooldown: true };
  return { ok: true, v };
}

export function makeControls(c, q) {
  const box = el('div', { class: 'controls' });
  c.controlsBox = box;
  c.result = el('p', { class: 'result', role: 'status' });
  c.slider = c.number = c.apply = null;
  if (!canWrite()) {
    box.append(el('p', { class: 'limits' }, state.who.writes_enabled === false
      ? 'Read-only environment: changes are turned off.'
      : 'You can read this queue; changing it needs the scaling:write scope.'), c.result);
    return box;
  }
  const b = q.bounds || {};
  const start = clamp(q.desired_concurrency ?? b.default ?? b.min, b.min, b.max);
  c.slider = el('input', { type: 'range', min: b.min, max: b.max, step: 1, value: start,
    'aria-label': `Desired concurrency for ${q.queue}` });
  c.number = el('input', { type: 'number', min: b.min, max: b.max, step: 1, value: start, inputmode: 'numeric',
    'aria-label': `Desired concurrency for ${q.queue} (number)` });
  c.slider.addEventListener('input', () => { c.number.value = c.slider.value; c.dirty = true; refreshGate(c); });
  c.number.addEventListener('input', () => {
    if (c.number.value !== '') c.slider.value = c.number.value;
    c.dirty = true;
    refreshGate(c);
  });
  c.limits = el('p', { class: 'limits' });
  c.windowLine = el('p', { class: 'window' });
  c.why = el('p', { class: 'why', role: 'status', 'aria-live': 'polite' });
  const reasonId = `reason-${q.queue}`;
  c.reason = el('textarea', { id: reasonId, maxlength: 500, rows: 2, placeholder: 'Why? (shown in the history)' });
  c.duration = el('select', { 'aria-label': 'Duration' },
    el('option', { value: '' }, 'until changed'), el('option', { value: '900' }, 'for 15 minutes'),
    el('option', { value: '3600' }, 'for 1 hour'), el('option', { value: '7200' }, 'for 2 hours'),
    el('option', { value: '28800' }, 'for 8 hours'));
  c.wait = el('input', { type: 'checkbox', id: `wait-${q.queue}`, checked: true });
  c.apply = el('button', { type: 'button', class: 'primary', onclick: () => apply(c) }, 'Apply');
  box.append(
    el('h3', { class: 'sub' }, 'Change'),
    el('div', { class: 'row value' }, c.slider, c.number, c.apply),
    c.why, c.windowLine, c.limits,
    el('label', { for: reasonId }, 'Reason'), c.reason,
    el('div', { class: 'row' }, c.duration, el('label', { class: 'check' }, c.wait, ' Wait for acknowledgement')),
    c.result);
  return box;
}

export function updateControls(c, q) {
  if (!c.slider) return;
  const b = q.bounds;
  if (b) {
    for (const input of [c.slider, c.number]) { input.min = b.min; input.max = b.max; }
    c.limits.textContent = `Between ${b.min} and ${b.max}; at most ${b.max_step} per change` +
      (b.cooldown_s ? `, ${b.cooldown_s} s apart` : '') +
      (b.confirm_above != null ? `; above ${b.confirm_above} asks for confirmation` : '') + '.';
  }
  // Not touched: follow the queue. A stored value outside the bounds shows
  // as the nearest allowed value, and the card says why (renderOob).
  if (!c.dirty && q.desired_concurrency != null && b) {
    const v = clamp(q.desired_concurrency, b.min, b.max);
    c.slider.value = v;
    c.number.value = v;
  }
  refreshGate(c, q);
}

// The window line and Apply's state; also run every second for the countdown.
export function refreshGate(c, q = c.q || queueOf(c.queue)) {
  if (!c.apply || !q) return;
  const w = changeWindow(q);
  const parts = [`Reachable now: ${w.min}–${w.max}`];
  if (w.known) {
    const left = secondsLeft(w);
    parts.push(left > 0 ? `cooldown: ${left} s left` : 'no cooldown running');
    if (w.budgetLeft != null) parts.push(`budget: ${w.budgetLeft} of ${w.perHour} changes left this hour`);
    else parts.push('no hourly budget');
  }
  // Without change_window (a server before issue 17) there is no countdown
  // and no budget figure: the server's 429 says them when it refuses.
  c.windowLine.textContent = parts.join(' · ') + '.';
  c.windowLine.classList.toggle('cooling', w.known && secondsLeft(w) > 0);
  const g = gate(q, c.number.value);
  c.gate = g;
  c.apply.disabled = c.busy || !g.ok;
  c.why.textContent = g.ok ? '' : g.why;
  c.why.hidden = g.ok;
}

// ---- the confirmation dialog -------------------------------------------------------------------

// <dialog> with showModal: focus moves into it, Escape cancels, and the
// page behind is inert. With `reason`, it asks for one (prefilled; "" makes
// it required), and with `duration`, how long (seconds, or null: until
// undone); `duration: { options: [[seconds, label], ...], value }` offers
// those instead, with no "until" choice. `title` replaces "Confirm the change".
let defaultDurations = null;
export function confirmDialog(text, { reason = null, ok = 'Confirm', duration = false, title = 'Confirm the change' } = {}) {
  const dlg = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-duration-row').hidden = !duration;
  const sel = $('#confirm-duration');
  defaultDurations ??= [...sel.options].map((o) => [o.value, o.textContent]);
  const opts = duration?.options || defaultDurations;
  sel.replaceChildren(...opts.map(([v, label]) => el('option', { value: v }, label)));
  sel.value = duration?.value ?? opts[0][0];
  $('#confirm-ok').textContent = ok;
  const field = $('#confirm-reason-row');
  field.hidden = reason === null;
  $('#confirm-reason').value = reason ?? '';
  $('#confirm-reason').required = reason !== null;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'confirm'
      ? { ok: true, reason: $('#confirm-reason').value.trim(), duration: Number($('#confirm-duration').value) || null }
      : { ok: false }), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

// ---- applying --------------------------------------------------------------------------------

// path: the change's route (PUT of the queue, or POST of its revert).
async function send(c, body, busyText, { method = 'PUT', path = `/api/v1/scaling/${encodeURIComponent(c.queue)}` } = {}) {
  c.busy = true;
  if (c.apply) c.apply.disabled = true;
  c.result.className = 'result';
  c.result.setAttribute('role', 'status');
  c.result.textContent = busyText;
  const r = await call(method, path, body);
  c.busy = false;
  refreshGate(c);
  if (r.status === 401) { state.onSessionEnd?.(); return null; }
  if (r.status === 202) {
    // Above approve_above: stored, nothing changed until someone approves.
    const a = r.json.approval;
    c.result.className = 'result';
    c.result.textContent = `Waiting for approval: ${a.from} → ${a.to} changes nothing until another person ` +
      `with scaling:approve approves it (request ${a.id}, until ${fmtDateTime(a.expires_at)}).`;
    state.onApprovals?.();
  } else if (r.status === 200) {
    const acks = r.json.acks;
    c.result.className = 'result ok';
    c.result.textContent = `Applied: ${c.queue} is now ${r.json.desired_concurrency} (version ${r.json.version}).` +
      (acks ? ` ${acks.acknowledged} of ${acks.expected} workers acknowledged${acks.complete ? '.' : ' before the wait ended.'}` : '');
    if (r.json.version !== c.version) c.versionChangedAt = Date.now();
  } else {
    const message = r.json?.error?.message || `The server answered ${r.status}.`;
    c.result.className = 'result error';
    c.result.setAttribute('role', 'alert');
    // The server's message already says when to retry a 429.
    c.result.textContent = r.status === 0 ? `Not applied: ${message}` : `Refused: ${message}`;
  }
  state.onChanged?.(c.queue);               // history of the card and of all queues
  return r;
}

async function apply(c) {
  const q = queueOf(c.queue);
  const g = gate(q, c.number.value);
  c.result.className = 'result';
  c.result.setAttribute('role', 'status');
  if (!g.ok) { c.result.textContent = g.why; return; }
  const value = g.v;
  const reason = c.reason.value.trim();
  if (!reason) { c.result.textContent = 'A reason is required: it goes into the history.'; c.reason.focus(); return; }
  const b = q.bounds;
  const w = changeWindow(q);
  const big = w.confirmAbove != null && value > w.confirmAbove && value !== q.desired_concurrency;
  const toMin = value === b.min && value !== q.desired_concurrency;
  if (big || toMin) {
    const why = big ? `${value} is above ${w.confirmAbove}, the level this queue asks confirmation for.`
                    : `${value} is the minimum of ${c.queue}${value === 0 ? ': its workers will stop taking jobs' : ''}.`;
    const ans = await confirmDialog(`Set ${c.queue} from ${q.desired_concurrency} to ${value}? ${why}`);
    if (!ans.ok) { c.result.textContent = 'Not changed.'; return; }
  }
  const body = { desired_concurrency: value, reason, confirm: big || toMin };
  if (c.duration.value) body.duration_s = Number(c.duration.value);
  if (c.wait.checked) body.wait_ms = 5000;
  const r = await send(c, body, c.wait.checked ? 'Applying and waiting for the workers to acknowledge…' : 'Applying…');
  if (r?.status === 200 || r?.status === 202) { c.dirty = false; c.reason.value = ''; }
}

// "Revert to this" on a history row of an applied change: the value its
// version set, through every check, after a confirmation saying from → to.
export async function revertTo(queue, entry) {
  const c = state.cards.get(queue);
  const q = queueOf(queue);
  if (!c || !q) return;
  const ans = await confirmDialog(
    `Revert ${queue} to version ${entry.version}: from ${q.desired_concurrency} to ${entry.to}? ` +
    'Every check applies, as for any change (recorded in the history).',
    { reason: `revert to version ${entry.version}`, ok: 'Revert' });
  if (!ans.ok) { c.result.className = 'result'; c.result.textContent = 'Not changed.'; return; }
  c.root.scrollIntoView?.({ block: 'nearest' });
  await send(c, { to_version: entry.version, reason: ans.reason || `revert to version ${entry.version}`, confirm: true, wait_ms: 5000 },
    `Reverting ${queue} to version ${entry.version} (${entry.to})…`,
    { method: 'POST', path: `/api/v1/scaling/${encodeURIComponent(queue)}/revert` });
}

// "End now" on a running override: a permanent change back to revert_to,
// after a confirmation that names both values and asks for a reason.
export async function endOverride(c, revertTo) {
  const q = queueOf(c.queue);
  const ans = await confirmDialog(
    `End the temporary override of ${c.queue} now? It goes from ${q.desired_concurrency} back to ${revertTo}, ` +
    'as a permanent change (recorded in the history).', { reason: 'override ended early', ok: 'End now' });
  if (!ans.ok) { c.result.className = 'result'; c.result.textContent = 'Not changed.'; return; }
  await send(c, { desired_concurrency: revertTo, reason: ans.reason || 'override ended early', confirm: true, wait_ms: 5000 },
    `Ending the override: back to ${revertTo}…`);
}

// The countdowns run every second, between snapshots.
setInterval(() => { for (const c of state.cards.values()) refreshGate(c); }, 1000);
