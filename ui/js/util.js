// util.js — DOM helpers, the API client and the formats every view shares.

export const $ = (sel, root = document) => root.querySelector(sel);

// el('div', {class: 'x', onclick: fn}, 'text', child, [more]) builds a node.
// Attributes go through setAttribute, never innerHTML: nothing the server
// sends is parsed as markup.
export const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return n;
};

// The one place that talks HTTP. Never throws: an unreachable server is an
// answer like any other (status 0), so no caller stops half-way.
export async function api(method, path, body, csrf) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return { status: 0, json: { error: { message: 'The server cannot be reached; try again.' } } };
  }
  let json = null;
  try { json = await res.json(); } catch { /* empty body */ }
  return { status: res.status, json };
}

const pad = (n) => String(n).padStart(2, '0');

// Local wall-clock time, 24 h: "14:05". Operators compare it with their
// own clock, so it is never UTC and never sub-second.
export function fmtHM(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// "2026-11-29 14:05:09", local: the audit log's dates.
export function fmtDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "14:05", or "29 Nov 14:05" when it is not today.
export function fmtWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? fmtHM(d.getTime()) : `${d.getDate()} ${d.toLocaleString('en', { month: 'short' })} ${fmtHM(d.getTime())}`;
}

// A span of seconds for people: "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h".
export function fmtSpan(s) {
  if (s == null || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export const fmtRate = (x) => (x == null || !Number.isFinite(x) ? '–' : x >= 10 ? x.toFixed(0) : x.toFixed(1));
export const num = (x) => (x == null ? '–' : String(x));
export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
