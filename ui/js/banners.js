// banners.js — the lines under the top bar, each with the context an
// operator needs to act: who turned writes off and why, when a policy
// failed and which version is in force, which alert rules fail to run.
import { $, el, fmtWhen } from './util.js';
import { call } from './state.js';

export function setBanner(id, kind, ...content) {
  const old = document.getElementById(`banner-${id}`);
  if (!kind) { old?.remove(); return; }
  const b = old || el('div', { id: `banner-${id}` });
  b.className = `banner ${kind}`;
  b.replaceChildren(...content);
  if (!old) $('#banners').append(b);
}

export const clearBanners = () => $('#banners').replaceChildren();

const sha = (s) => (s ? String(s).slice(0, 12) : '');

// The writes flag. snapshot.writes (issue 17) tells who, when and why;
// an older server sends only writes_enabled, and the banner says less.
export function writesBanner(snap) {
  const off = snap.writes_enabled === false || snap.writes?.enabled === false;
  if (!off) return setBanner('ro', null);
  const w = snap.writes || {};
  const ctx = [w.updated_by && `by ${w.updated_by}`, w.updated_at && `at ${fmtWhen(w.updated_at)}`].filter(Boolean).join(' ');
  setBanner('ro', 'warn',
    `Read-only: environment "${snap.environment}" has writes turned off`,
    ctx ? ` (${ctx}${w.reason ? `: “${w.reason}”` : ''})` : (w.reason ? ` (“${w.reason}”)` : ''),
    '. An admin can turn the "writes" flag on.');
}

// A failed reload of the policies, and alert rules that raise when they
// run. From snapshot.policy when the server sends it; otherwise from
// GET /api/v1/policies, which older servers have.
export function policyBanners(policy) {
  if (!policy) return;
  const e = policy.last_error;
  if (e) {
    const inForce = policy.sha256 ? ` The previous policy stays in force (sha256 ${sha(policy.sha256)}…` +
      `${policy.loaded_at ? `, loaded ${fmtWhen(policy.loaded_at)}` : ''}).` : ' The previous policy stays in force.';
    setBanner('policy', 'bad',
      `The policy file ${e.file}${e.line ? ':' + e.line : ''} failed to load${e.at ? ` at ${fmtWhen(e.at)}` : ''}: ${e.message}.`,
      inForce);
  } else setBanner('policy', null);
  const failing = policy.failing_rules || [];
  if (failing.length) {
    setBanner('rules', 'bad', `Alert rules failing to run (${failing.length}): `,
      el('ul', { class: 'rules' }, ...failing.map((f) => el('li', {},
        el('strong', {}, f.alert), f.queue ? ` on ${f.queue}` : '', f.at ? ` (${fmtWhen(f.at)})` : '', `: ${f.error}`))),
      'Their alerts are not evaluated until the rule is fixed.');
  } else setBanner('rules', null);
}

export async function loadPolicies() {
  const r = await call('GET', '/api/v1/policies');
  if (r.status === 200) policyBanners(r.json);
}

export function healthBanners(snap) {
  const down = [snap.redis === 'down' && 'Redis', snap.store === 'down' && 'the database'].filter(Boolean);
  const what = down.join(' and ');
  setBanner('down', down.length ? 'bad' : null,
    `${what.charAt(0).toUpperCase()}${what.slice(1)} not answering: the numbers below may be out of date.`);
  setBanner('full', snap.store === 'full' ? 'bad' : null,
    'The database volume is full: changes are refused (507 store_full) until space is freed. Nothing was lost.');
}
