// theme.js — light and dark. The page follows prefers-color-scheme until
// the operator presses the toggle; that choice is kept in localStorage and
// wins from then on. CSS does the page; charts read palette() when drawing.
import { $ } from './util.js';

const KEY = 'sluice-theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');

function stored() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

export function isDark() {
  const s = stored();
  return s ? s === 'dark' : media.matches;
}

// Colours for canvas drawing (charts cannot use CSS variables directly).
export function palette() {
  return isDark()
    ? { axis: '#b8c1d1', grid: 'rgba(255,255,255,0.10)', waiting: '#7aa7ff', active: '#4cc38a',
        desired: '#e0a040', running: '#7aa7ff', workers: '#b48cff', done: '#4cc38a', failed: '#ff7b72',
        marker: '#e0a040' }
    : { axis: '#4a5565', grid: 'rgba(0,0,0,0.08)', waiting: '#2457c5', active: '#1d7f4e',
        desired: '#9a5b00', running: '#2457c5', workers: '#7b3fc4', done: '#1d7f4e', failed: '#b3261e',
        marker: '#b26a00' };
}

const listeners = new Set();
export const onThemeChange = (fn) => listeners.add(fn);

function apply() {
  const dark = isDark();
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const b = $('#theme');
  if (b) {
    b.setAttribute('aria-pressed', String(dark));
    // One name ("Dark mode"); aria-pressed says whether it is on.
    b.title = dark ? 'Dark mode is on: press for the light theme' : 'Press for the dark theme';
  }
  for (const fn of listeners) fn(dark);
}

export function initTheme() {
  apply();
  media.addEventListener('change', () => { if (!stored()) apply(); });
  $('#theme').addEventListener('click', () => {
    try { localStorage.setItem(KEY, isDark() ? 'light' : 'dark'); } catch { /* private mode: this page only */ }
    apply();
  });
}
