// approvals.js — "Pending approvals": changes above a queue's
// approve_above wait here for a second person. Principals with
// scaling:approve see them with Approve and Reject (a reject asks for a
// reason, an approve confirms first); others see a note saying who can.
// The server decides everything (the requester cannot approve, the change
// is judged again when approved); its refusal is shown as it is.
import { $, el, fmtDateTime, fmtWhen } from './util.js';
import { state, call } from './state.js';
import { confirmDialog } from './controls.js';

const REFRESH_MS = 5000;
const view = { seq: 0, timer: null };

export const canApprove = () => Boolean(state.who && state.who.scopes.includes('scaling:approve'));

// The panel's standing note (no approvals, no scope, cannot load).
const note = (text) => { $('#approvals-note').textContent = text; };

// What the last decision did.
function result(text, error = false) {
  const n = $('#approvals-result');
  n.textContent = text;
  n.className = error ? 'result error' : 'result ok';
  n.setAttribute('role', error ? 'alert' : 'status');
}

async function decide(a, verb) {
  const change = `${a.queue} from ${a.from} to ${a.to}, asked by ${a.requested_by} ("${a.reason}")`;
  const ans = verb === 'approve'
    ? await confirmDialog(`Approve ${change}? It is applied now, through every check as of now.`, { ok: 'Approve' })
    : await confirmDialog(`Reject ${change}? Nothing changes; the reason is recorded.`, { reason: '', ok: 'Reject' });
  if (!ans.ok) return;
  const body = ans.reason ? { reason: ans.reason } : {};
  const r = await call('POST', `/api/v1/approvals/${encodeURIComponent(a.id)}/${verb}`, body);
  if (r.status === 401) { state.onSessionEnd?.(); return; }
  if (r.status === 200) {
    const ch = r.json.change;
    result(verb === 'approve'
      ? `Approved: ${a.queue} is now ${ch?.desired_concurrency ?? a.to}${ch ? ` (version ${ch.version})` : ''}.`
      : `Rejected: ${a.queue} stays as it is.`);
  } else {
    result(`Not ${verb}d: ${r.json?.error?.message || `the server answered ${r.status}`}`, true);
  }
  state.onChanged?.(a.queue);
  loadApprovals();
}

function row(a) {
  return el('tr', {},
    el('td', { class: 'when' }, el('time', { datetime: a.requested_at, title: fmtDateTime(a.requested_at) }, fmtWhen(a.requested_at))),
    el('td', { 'data-label': 'by' }, a.requested_by),
    el('td', { 'data-label': 'queue' }, a.queue),
    el('td', { class: 'change' }, `${a.from} → ${a.to}`),
    el('td', { class: 'reason' }, a.reason),
    el('td', { 'data-label': 'until' }, el('time', { datetime: a.expires_at }, fmtWhen(a.expires_at))),
    el('td', { class: 'decide' },
      el('button', { type: 'button', class: 'small primary', onclick: () => decide(a, 'approve'),
        'aria-label': `Approve ${a.queue} ${a.from} to ${a.to}` }, 'Approve'), ' ',
      el('button', { type: 'button', class: 'small', onclick: () => decide(a, 'reject'),
        'aria-label': `Reject ${a.queue} ${a.from} to ${a.to}` }, 'Reject')));
}

export async function loadApprovals() {
  const table = $('#approvals');
  if (!state.who) return;
  if (!canApprove()) {
    table.hidden = true;
    note('Changes above a queue\'s approve_above wait here for a second person; approving them needs the scaling:approve scope.');
    return;
  }
  const mine = ++view.seq;
  const r = await call('GET', '/api/v1/approvals?status=pending');
  if (mine !== view.seq) return;
  if (r.status !== 200) {
    if (r.status === 401) return;
    note(`The approvals could not be loaded: ${r.json?.error?.message || `the server answered ${r.status}`}.`);
    return;
  }
  table.hidden = r.json.items.length === 0;
  $('#approvals tbody').replaceChildren(...r.json.items.map(row));
  note(r.json.items.length ? '' : 'No change is waiting for approval.');
}

// On login: load now and every few seconds (a request from someone else
// arrives without a change event: nothing changed yet).
export function startApprovals() {
  clearInterval(view.timer);
  result('');
  loadApprovals();
  view.timer = setInterval(() => { if (state.who) loadApprovals(); }, REFRESH_MS);
}

state.onApprovals = () => loadApprovals();
