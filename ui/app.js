// app.js — the Sluice admin UI. It only uses the documented endpoints, so it
// behaves the same on a laptop and in production. Live data arrives over
// Server-Sent Events; EventSource reconnects on its own after a restart.

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return n;
};

const state = { who: null, csrf: null, snap: null, cards: new Map(), events: null, history: new Map() };
const WINDOW_S = 600;                         // the depth chart shows the last 10 minutes

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    // The server cannot be reached (restarting, network): an answer like
    // any other, so no caller stops half-way (e.g. before listening).
    return { status: 0, json: { error: { message: 'The server cannot be reached; try again.' } }, retryAfter: null };
  }
  let json = null;
  try { json = await res.json(); } catch { /* empty body */ }
  return { status: res.status, json, retryAfter: res.headers.get('Retry-After') };
}

const canWrite = () => state.who && state.who.scopes.includes('scaling:write') && state.who.writes_enabled;
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const fmtRate = (x) => (x == null ? '–' : x >= 10 ? x.toFixed(0) : x.toFixed(1));

// ---- login ------------------------------------------------------------------

async function boot() {
  const r = await api('GET', '/api/v1/whoami');
  if (r.status === 200) return enter(r.json);
  showLogin();
}

function showLogin(message = '') {
  state.events?.close();
  state.events = null;
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#who').hidden = true;
  $('#env').hidden = true;
  $('#banners').replaceChildren();
  $('#login').hidden = false;
  $('#login-error').textContent = message;
  $('#token').focus();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await api('POST', '/api/v1/session', { token: $('#token').value.trim() });
  if (r.status !== 200) {
    $('#login-error').textContent = r.json?.error?.message || `Login failed (${r.status})`;
    return;
  }
  $('#token').value = '';
  const who = await api('GET', '/api/v1/whoami');
  if (who.status !== 200) {
    $('#login-error').textContent = who.json?.error?.message || `Login failed (${who.status})`;
    return;
  }
  enter(who.json);
});

$('#logout').addEventListener('click', async () => {
  await api('DELETE', '/api/v1/session');
  state.who = null;
  state.csrf = null;
  showLogin();
});

async function enter(who) {
  state.who = who;
  state.csrf = who.csrf_token || null;
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
  const snap = await api('GET', '/admin/runtime-scaling');
  if (snap.status === 200) render(snap.json);
  await Promise.all([loadAudit(), loadPolicies()]);
  listen();
}

// ---- live data ------------------------------------------------------------------

function listen() {
  state.events?.close();
  const es = new EventSource('/admin/runtime-scaling/events');
  state.events = es;
  es.addEventListener('snapshot', (e) => { setBanner('conn', null); render(JSON.parse(e.data)); });
  es.addEventListener('change', (e) => {
    const c = JSON.parse(e.data);
    loadHistory(c.queue);
    loadAudit();
  });
  es.addEventListener('alert', () => {});     // the next snapshot shows it
  es.onerror = async () => {
    setBanner('conn', 'warn', 'Live updates interrupted; reconnecting…');
    const who = await api('GET', '/api/v1/whoami');
    if (who.status === 401) return showLogin('Your session ended; log in again.');
    // A refused stream (e.g. too many open) is not retried by the browser.
    if (es.readyState === EventSource.CLOSED && state.events === es) setTimeout(() => state.who && listen(), 3000);
  };
}

function setBanner(id, kind, text) {
  const old = document.getElementById(`banner-${id}`);
  if (!kind) { old?.remove(); return; }
  const b = old || el('div', { id: `banner-${id}` });
  b.className = `banner ${kind}`;
  b.textContent = text;
  if (!old) $('#banners').append(b);
}

async function loadPolicies() {
  const r = await api('GET', '/api/v1/policies');
  const e = r.json?.last_error;
  setBanner('policy', e ? 'bad' : null,
    e ? `The policy file ${e.file}${e.line ? ':' + e.line : ''} failed to load: ${e.message}. The previous policy stays in force.` : '');
}

function render(snap) {
  state.snap = snap;
  state.who.writes_enabled = snap.writes_enabled ?? state.who.writes_enabled;
  setBanner('ro', snap.writes_enabled === false ? 'warn' : null,
    `Read-only: environment "${snap.environment}" has writes turned off. An admin can turn the "writes" flag on.`);
  const down = [snap.redis === 'down' && 'Redis', snap.store === 'down' && 'the database'].filter(Boolean);
  const what = down.join(' and ');
  setBanner('down', down.length ? 'bad' : null,
    `${what.charAt(0).toUpperCase()}${what.slice(1)} not answering: the numbers below may be out of date.`);
  setBanner('full', snap.store === 'full' ? 'bad' : null,
    'The database volume is full: changes are refused (507 store_full) until space is freed. Nothing was lost.');
  // Controls follow the writes flag and the caller's scopes without a reload.
  const writable = canWrite();
  if (state.writable !== undefined && writable !== state.writable) {
    for (const [name, card] of state.cards) {
      const old = card.controlsBox;
      card.slider = card.number = null;
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
      card.plot.setSize({ width: Math.max(300, card.chartBox.clientWidth || 420), height: 130 });
      loadHistory(q.queue);
    }
    updateCard(card, q);
  }
  if (Math.random() < 0.1) loadPolicies();   // now and then, not on every snapshot
}

// ---- one queue ---------------------------------------------------------------------

function stat(label) {
  const v = el('div', { class: 'v' }, '–');
  return { root: el('div', { class: 'stat' }, v, el('div', { class: 'k' }, label)), v };
}

function makeCard(q) {
  const c = { queue: q.queue, times: [], waiting: [], active: [], dirty: false };
  c.title = el('h2', {}, q.queue, el('span', { class: 'tag' }, q.layout));
  c.alerts = el('span');
  c.title.append(c.alerts);
  c.desired = stat('desired / worker');
  c.running = stat('running (all workers)');
  c.workers = stat('workers');
  c.pending = stat('pending updates');
  c.depthW = stat('waiting');
  c.depthA = stat('active');
  c.depthF = stat('failed');
  c.rate = stat('done / failed per s');
  c.chartBox = el('div', { class: 'chart' });
  c.workerBody = el('tbody');
  c.historyBody = el('tbody');
  c.root = el('article', { class: 'card', 'aria-label': `Queue ${q.queue}` },
    c.title,
    el('div', { class: 'stats' }, c.desired.root, c.running.root, c.workers.root, c.pending.root,
      c.depthW.root, c.depthA.root, c.depthF.root, c.rate.root),
    c.chartBox,
    el('p', { class: 'caption' }, 'Jobs ', el('span', { class: 'w' }, 'waiting'), ' and ',
      el('span', { class: 'a' }, 'active'), ', last 10 minutes; ', el('span', { class: 'm' }, 'dashed'),
      ' lines mark changes of desired concurrency.'),
    el('table', { class: 'workers' },
      el('thead', {}, el('tr', {}, ...['Worker', 'Concurrency', 'Version', 'Active', 'Last seen', 'State'].map((h) => el('th', {}, h)))),
      c.workerBody),
    makeControls(c, q),
    el('details', { open: true }, el('summary', {}, 'History'),
      el('table', { class: 'history' },
        el('thead', {}, el('tr', {}, ...['When', 'Who', 'Change', 'Reason', 'Source', 'Outcome'].map((h) => el('th', {}, h)))),
        c.historyBody)));
  c.plot = new uPlot({
    width: 420, height: 130, legend: { show: false },
    scales: { x: { time: true } },
    series: [{}, { label: 'waiting', stroke: '#2457c5', width: 2, points: { show: false } },
      { label: 'active', stroke: '#1d7f4e', width: 1.5, points: { show: false } }],
    axes: [{ size: 28 }, { size: 56 }],
    hooks: { draw: [(u) => drawMarkers(u, c)] },
  }, [[], [], []], c.chartBox);
  return c;
}

// Vertical marks where the desired concurrency changed.
function drawMarkers(u, c) {
  const marks = (state.history.get(c.queue) || []).filter((e) => e.outcome === 'applied' && e.from !== e.to);
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#b26a00';
  ctx.setLineDash([4, 3]);
  for (const m of marks) {
    const x = u.valToPos(new Date(m.at).getTime() / 1000, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

function makeControls(c, q) {
  const box = el('div', { class: 'controls' });
  c.controlsBox = box;
  c.result = el('p', { class: 'result', role: 'status' });
  if (!canWrite()) {
    box.append(el('p', { class: 'limits' }, state.who.writes_enabled === false
      ? 'Read-only environment: changes are turned off.'
      : 'You can read this queue; changing it needs the scaling:write scope.'));
    return box;
  }
  const b = q.bounds || {};
  c.slider = el('input', { type: 'range', min: b.min, max: b.max, step: 1, value: q.desired_concurrency,
    'aria-label': `Desired concurrency for ${q.queue}` });
  c.number = el('input', { type: 'number', min: b.min, max: b.max, step: 1, value: q.desired_concurrency,
    'aria-label': `Desired concurrency for ${q.queue} (number)` });
  c.slider.addEventListener('input', () => { c.number.value = c.slider.value; c.dirty = true; });
  c.number.addEventListener('input', () => { c.slider.value = c.number.value; c.dirty = true; });
  c.limits = el('span', { class: 'limits' });
  const reasonId = `reason-${q.queue}`;
  c.reason = el('textarea', { id: reasonId, maxlength: 500, placeholder: 'Why? (shown in the history)' });
  c.duration = el('select', { 'aria-label': 'Duration' },
    el('option', { value: '' }, 'until changed'), el('option', { value: '900' }, 'for 15 minutes'),
    el('option', { value: '3600' }, 'for 1 hour'), el('option', { value: '7200' }, 'for 2 hours'),
    el('option', { value: '28800' }, 'for 8 hours'));
  c.wait = el('input', { type: 'checkbox', id: `wait-${q.queue}`, checked: true });
  c.apply = el('button', { type: 'button', class: 'primary', onclick: () => apply(c) }, 'Apply');
  box.append(
    el('div', { class: 'row' }, c.slider, c.number),
    c.limits,
    el('label', { for: reasonId }, 'Reason'), c.reason,
    el('div', { class: 'row' }, c.duration,
      el('label', {}, c.wait, ' Wait for acknowledgement'), el('span', { class: 'spacer' }), c.apply),
    c.result);
  return box;
}

function updateCard(c, q) {
  const t = Date.now() / 1000;
  // A version we have not seen means a change we may have missed (events
  // are lost while reconnecting): refresh the history from the server.
  if (c.version !== undefined && q.version !== c.version) {
    loadHistory(q.queue);
    loadAudit();
  }
  c.version = q.version;
  const d = q.depth || {};
  c.desired.v.textContent = q.desired_concurrency ?? '–';
  c.running.v.textContent = q.active_concurrency;
  c.running.root.classList.toggle('mismatch', q.workers.some((w) => w.state === 'mismatch' || w.state === 'invalid'));
  c.workers.v.textContent = q.worker_count;
  c.pending.v.textContent = q.pending_updates;
  c.depthW.v.textContent = d.waiting ?? '–';
  c.depthA.v.textContent = d.active ?? '–';
  c.depthF.v.textContent = d.failed ?? '–';
  c.rate.v.textContent = `${fmtRate(q.rates.completed_per_s)} / ${fmtRate(q.rates.failed_per_s)}`;
  c.alerts.replaceChildren(...q.alerts.map((a) => el('span', { class: `tag ${a.state}`, title: a.message },
    `${a.name}${a.state === 'pending' ? ' (pending)' : ''}`)));
  c.workerBody.replaceChildren(...q.workers.map((w) => el('tr', { class: w.state },
    el('td', {}, w.id), el('td', {}, w.concurrency), el('td', {}, w.version), el('td', {}, w.active),
    el('td', {}, `${(w.last_seen_ms / 1000).toFixed(1)} s ago`), el('td', {}, w.state))));
  if (!q.workers.length) c.workerBody.append(el('tr', {}, el('td', { colspan: 6 }, 'No workers report for this queue.')));
  if (d.waiting != null) {
    c.times.push(t);
    c.waiting.push(d.waiting);
    c.active.push(d.active);
    while (c.times.length && c.times[0] < t - WINDOW_S) { c.times.shift(); c.waiting.shift(); c.active.shift(); }
    c.plot.setData([c.times, c.waiting, c.active]);
  }
  if (c.slider) {
    const b = (state.snap.queues.find((x) => x.queue === q.queue) || {}).bounds;
    if (b) {
      for (const input of [c.slider, c.number]) { input.min = b.min; input.max = b.max; }
      c.limits.textContent = `Between ${b.min} and ${b.max}; at most ${b.max_step} per change` +
        (b.cooldown_s ? `, ${b.cooldown_s} s apart` : '') +
        (b.confirm_above != null ? `; above ${b.confirm_above} asks for confirmation` : '') + '.';
    }
    if (!c.dirty) { c.slider.value = q.desired_concurrency; c.number.value = q.desired_concurrency; }
  }
}

// ---- changing a queue ------------------------------------------------------------

function confirmDialog(text) {
  const dlg = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'confirm'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

async function apply(c) {
  const q = state.snap.queues.find((x) => x.queue === c.queue);
  const b = q.bounds;
  const text = c.number.value.trim();
  const value = Number(text);
  const reason = c.reason.value.trim();
  c.result.className = 'result';
  c.result.setAttribute('role', 'status');
  if (text === '' || !Number.isInteger(value)) { c.result.textContent = 'Enter a whole number.'; return; }
  if (value < b.min || value > b.max) {
    c.result.textContent = `Choose a value between ${b.min} and ${b.max}: the policy allows no other.`;
    return;
  }
  if (!reason) { c.result.textContent = 'A reason is required: it goes into the history.'; c.reason.focus(); return; }
  const big = b.confirm_above != null && value > b.confirm_above && value !== q.desired_concurrency;
  const toMin = value === b.min && value !== q.desired_concurrency;
  if (big || toMin) {
    const why = big ? `${value} is above ${b.confirm_above}, the level this queue asks confirmation for.`
                    : `${value} is the minimum of ${c.queue}${value === 0 ? ': its workers will stop taking jobs' : ''}.`;
    if (!(await confirmDialog(`Set ${c.queue} from ${q.desired_concurrency} to ${value}? ${why}`))) {
      c.result.textContent = 'Not changed.';
      return;
    }
  }
  const body = { desired_concurrency: value, reason, confirm: big || toMin };
  if (c.duration.value) body.duration_s = Number(c.duration.value);
  if (c.wait.checked) body.wait_ms = 5000;
  c.apply.disabled = true;
  c.result.textContent = c.wait.checked ? 'Applying and waiting for the workers to acknowledge…' : 'Applying…';
  const r = await api('PUT', `/api/v1/scaling/${encodeURIComponent(c.queue)}`, body);
  c.apply.disabled = false;
  if (r.status === 200) {
    c.dirty = false;
    c.reason.value = '';
    const acks = r.json.acks;
    c.result.className = 'result ok';
    c.result.textContent = `Applied: ${c.queue} is now ${r.json.desired_concurrency} (version ${r.json.version}).` +
      (acks ? ` ${acks.acknowledged} of ${acks.expected} workers acknowledged${acks.complete ? '.' : ' before the wait ended.'}` : '');
    loadHistory(c.queue);
    loadAudit();
    return;
  }
  if (r.status === 401) return showLogin('Your session ended; log in again.');
  const message = r.json?.error?.message || `The server answered ${r.status}.`;
  c.result.className = 'result error';
  c.result.setAttribute('role', 'alert');
  // The server's message already says when to retry a 429.
  c.result.textContent = r.status === 0 ? `Not applied: ${message}` : `Refused: ${message}`;
  loadHistory(c.queue);                       // refusals are history too
  loadAudit();
}

// ---- history ------------------------------------------------------------------------

function historyRow(e, withQueue) {
  const change = e.kind === 'flag' ? `flag ${e.flag}: ${e.from ? 'on' : 'off'} → ${e.to ? 'on' : 'off'}` : `${e.from} → ${e.to}`;
  const outcome = e.outcome === 'applied' ? 'applied' : `refused (${e.error_code})`;
  return el('tr', { class: e.outcome },
    el('td', { title: e.at }, fmtTime(e.at)), el('td', {}, e.actor),
    ...(withQueue ? [el('td', {}, e.queue ?? '')] : []),
    el('td', {}, change), el('td', {}, e.reason), el('td', {}, e.source), el('td', {}, outcome));
}

async function loadHistory(queue) {
  const r = await api('GET', `/api/v1/scaling/${encodeURIComponent(queue)}/history?limit=15`);
  const c = state.cards.get(queue);
  if (r.status !== 200 || !c) return;
  state.history.set(queue, r.json.items);
  c.historyBody.replaceChildren(...r.json.items.map((e) => historyRow(e, false)));
  c.plot.redraw(false, false);
}

async function loadAudit() {
  const r = await api('GET', '/api/v1/audit?limit=30');
  if (r.status === 200) $('#audit tbody').replaceChildren(...r.json.items.map((e) => historyRow(e, true)));
}

window.addEventListener('resize', () => {
  for (const c of state.cards.values()) c.plot.setSize({ width: Math.max(300, c.chartBox.clientWidth), height: 130 });
});

boot();
