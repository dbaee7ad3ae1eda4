// main.js — log in, take the live snapshots, hand them to the views.
// It only uses the documented endpoints, so it behaves the same on a laptop
// and in production. Live data arrives over Server-Sent Events; EventSource
// reconnects on its own after a restart.
import { $ } from './util.js';
import { state, call, canWrite } from './state.js';
import { initTheme } from './theme.js';
import { setBanner, clearBanners, writesBanner, policyBanners, loadPolicies, healthBanners } from './banners.js';
import { makeCard, updateCard, firstShow, loadHistory } from './card.js';
import { makeControls } from './controls.js';
import { initOverview, renderOverview } from './overview.js';
import { initAudit, loadAudit, setAuditQueues, auditChanged } from './audit.js';
import { RANGES, currentRange, setRange } from './charts.js';
import { startApprovals, loadApprovals } from './approvals.js';
import { startAutoscalers, loadAutoscalers } from './autoscale.js';

async function boot() {
  const r = await call('GET', '/api/v1/whoami');
  if (r.status === 200) return enter(r.json);
  showLogin();
}

function showLogin(message = '') {
  state.events?.close();
  state.events = null;
  state.who = null;
  state.csrf = null;
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#who').hidden = true;
  $('#env').hidden = true;
  clearBanners();
  $('#login').hidden = false;
  $('#login-error').textContent = message;
  $('#token').focus();
}
state.onSessionEnd = () => showLogin('Your session ended; log in again.');
state.onChanged = (queue) => { loadHistory(queue); auditChanged(); loadApprovals(); loadAutoscalers(); };

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await call('POST', '/api/v1/session', { token: $('#token').value.trim() });
  if (r.status !== 200) {
    $('#login-error').textContent = r.json?.error?.message || `Login failed (${r.status})`;
    return;
  }
  $('#token').value = '';
  const who = await call('GET', '/api/v1/whoami');
  if (who.status !== 200) {
    $('#login-error').textContent = who.json?.error?.message || `Login failed (${who.status})`;
    return;
  }
  enter(who.json);
});

$('#logout').addEventListener('click', async () => {
  await call('DELETE', '/api/v1/session');
  showLogin();
});

async function enter(who) {
  state.who = who;
  state.csrf = who.csrf_token || null;
  state.writable = undefined;
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').hidden = false;
  $('#who').textContent = `${who.name} · ${who.scopes.join(', ')}`;
  $('#env').hidden = false;
  $('#env').textContent = who.environment;
  $('#env').className = `env ${who.environment}`;
  $('#queues').replaceChildren();
  state.cards.clear();
  const snap = await call('GET', '/admin/runtime-scaling');
  if (snap.status === 200) render(snap.json);
  await Promise.all([loadAudit({ before: null }), state.snap?.policy ? null : loadPolicies()]);
  startApprovals();
  startAutoscalers();
  listen();
}

// ---- live data --------------------------------------------------------------------

function listen() {
  state.events?.close();
  const es = new EventSource('/admin/runtime-scaling/events');
  state.events = es;
  es.addEventListener('snapshot', (e) => { setBanner('conn', null); render(JSON.parse(e.data)); });
  es.addEventListener('change', (e) => {
    const c = JSON.parse(e.data);
    loadHistory(c.queue);
    auditChanged();
    loadApprovals();
    loadAutoscalers();                      // a human change holds the rule
  });
  es.addEventListener('alert', () => {});     // the next snapshot shows it
  es.onerror = async () => {
    setBanner('conn', 'warn', 'Live updates interrupted; reconnecting…');
    const who = await call('GET', '/api/v1/whoami');
    if (who.status === 401) return showLogin('Your session ended; log in again.');
    // A refused stream (e.g. too many open) is not retried by the browser.
    if (es.readyState === EventSource.CLOSED && state.events === es) setTimeout(() => state.who && listen(), 3000);
  };
}

function render(snap) {
  if (!state.who) return;
  state.snap = snap;
  state.snapAt = Date.now();
  state.who.writes_enabled = snap.writes_enabled ?? state.who.writes_enabled;
  writesBanner(snap);
  healthBanners(snap);
  // snapshot.policy (issue 17) on every snapshot; an older server is asked
  // GET /api/v1/policies now and then instead.
  if (snap.policy) policyBanners(snap.policy);
  else if (Math.random() < 0.1) loadPolicies();
  // Controls follow the writes flag and the caller's scopes without a reload.
  const writable = canWrite();
  if (state.writable !== undefined && writable !== state.writable) {
    for (const [name, card] of state.cards) {
      const old = card.controlsBox;
      card.dirty = false;
      old.replaceWith(makeControls(card, snap.queues.find((x) => x.queue === name) || { queue: name }));
    }
  }
  state.writable = writable;
  for (const q of snap.queues) {
    let card = state.cards.get(q.queue);
    if (!card) {
      card = makeCard(q);
      state.cards.set(q.queue, card);
      $('#queues').append(card.root);
      firstShow(card);
    }
    updateCard(card, q, snap);
  }
  setAuditQueues(snap.queues.map((q) => q.queue));
  renderOverview();
}

// ---- the range picker -------------------------------------------------------------

function initRange() {
  const box = $('#range');
  for (const r of Object.keys(RANGES)) {
    const input = box.querySelector(`input[value="${r}"]`);
    input.checked = r === currentRange();
    input.addEventListener('change', () => input.checked && setRange(r));
  }
}

initTheme();
initOverview();
initAudit();
initRange();
boot();
