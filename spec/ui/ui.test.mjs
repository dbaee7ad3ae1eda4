// ui.test.mjs — the admin UI in real Chromium (Debian's, driven by
// playwright-core; never a downloaded browser) against a real sluiced,
// Redis and workers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, putScaling, createToken, ROOT, TEST_POLICY, tempDir } from '../api/harness.mjs';
import { writeFileSync, readFileSync, statSync, rmSync } from 'node:fs';
import { startRedis, startWorker, produce, waitFor, sleep, freePort } from '../api/fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "ingestion" { max = 64, max_step = 16, confirm_above = 48, default = 8 }
queue "narrow"    { }
queue "acks"      { }
queue "gated"     { approve_above = 10 }
queue "pausable"  { min = 2, default = 2 }
queue "auto"      { max = 16, max_step = 4, default = 2 }
queue "autodry"   { default = 2 }
alert "acks_drift" {
  severity = "warning", for_s = 0,
  worker = function(w, q) return q.queue == "acks" and w.concurrency ~= q.desired end,
  message = function(w, q) return ("%s runs %d, desired %d"):format(w.id, w.concurrency, q.desired) end,
}
`;

const AXE = readFileSync(join(ROOT, 'spec', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let redis, srv, browser, workers = [];
before(async () => {
  redis = await startRedis();
  // A fixed port, so the page can reconnect to a restarted server.
  srv = await startServer({ policies: POLICY, extraArgs: ['--redis', redis.url, '--listen', `127.0.0.1:${await freePort()}`] });
  workers = [startWorker(redis, 'ingestion', ['--id', 'ingest-a']), startWorker(redis, 'ingestion', ['--id', 'ingest-b'])];
  await produce(redis, 'ingestion', 300, ['--sleep-ms', '200', '--fail-ratio', '0.05']);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
after(async () => {
  await browser?.close();
  await Promise.all(workers.map((w) => w.stop()));
  try { await srv.cleanup(); } finally { await redis.cleanup(); }
});

async function loggedIn(token, { viewport = { width: 1400, height: 1000 }, colorScheme = 'light' } = {}) {
  const page = await browser.newPage({ viewport, colorScheme });
  await page.goto(`http://127.0.0.1:${srv.port}/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('article', { name: 'Queue ingestion' }).waitFor();
  return page;
}

const card = (page, q) => page.getByRole('article', { name: `Queue ${q}` });

test('login_and_logout', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    await page.getByText('root-admin').waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Token').waitFor();
    const who = await page.evaluate(async () => (await fetch('/api/v1/whoami')).status);
    assert.equal(who, 401);
    await page.getByLabel('Token').fill('slc_wrong_token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: /unknown, expired or revoked/ }).waitFor();
  } finally { await page.close(); }
});

test('a_reader_sees_values_but_no_controls_and_a_forged_write_is_refused', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    await card(page, 'ingestion').getByText('workers').first().waitFor();
    assert.equal(await page.getByRole('slider').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Apply' }).count(), 0);
    const forged = await page.evaluate(async () => {
      const who = await (await fetch('/api/v1/whoami')).json();
      const r = await fetch('/api/v1/scaling/ingestion', { method: 'PUT', headers: { 'Content-Type': 'application/json',
        'X-CSRF-Token': who.csrf_token }, body: JSON.stringify({ desired_concurrency: 9, reason: 'forged' }) });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(forged.status, 403);
    assert.equal(forged.body.error.code, 'forbidden');
  } finally { await page.close(); }
});

test('a_cookie_request_without_the_csrf_token_is_refused', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    const r = await page.evaluate(async () => {
      const res = await fetch('/api/v1/scaling/alpha', { method: 'PUT', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ desired_concurrency: 5, reason: 'no csrf' }) });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'csrf');
  } finally { await page.close(); }
});

test('slider_bounds_follow_the_policy', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    const slider = page.getByLabel('Desired concurrency for ingestion', { exact: true });
    assert.equal(await slider.getAttribute('min'), '1');
    assert.equal(await slider.getAttribute('max'), '64');
    const zero = page.getByLabel('Desired concurrency for zero', { exact: true });
    assert.equal(await zero.getAttribute('min'), '0');
    assert.equal(await zero.getAttribute('max'), '32');
    await card(page, 'ingestion').getByText(/at most 16 per change/).waitFor();
  } finally { await page.close(); }
});

test('a_big_change_asks_for_confirmation_then_applies_and_the_history_shows_the_reason', async () => {
  await putScaling(srv, 'ingestion', { desired_concurrency: 24, reason: 'step 1' });
  await putScaling(srv, 'ingestion', { desired_concurrency: 40, reason: 'step 2' });
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'ingestion');
    await c.getByLabel('Desired concurrency for ingestion (number)').fill('50');
    await c.getByLabel('Reason').fill('backfill before the sale');
    await c.getByRole('button', { name: 'Apply' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /above 48/);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await c.getByRole('status').filter({ hasText: /Applied: ingestion is now 50/ }).waitFor();
    await c.getByRole('status').filter({ hasText: /2 of 2 workers acknowledged/ }).waitFor();
    await c.getByRole('cell', { name: 'backfill before the sale' }).waitFor();
    const t = await srv.request('GET', '/api/v1/scaling/ingestion', { token: srv.tokens.read });
    assert.equal(t.json.desired_concurrency, 50);
  } finally { await page.close(); }
});

test('a_change_the_server_would_refuse_is_not_offered_and_a_refusal_is_shown_as_text', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    // A step larger than max_step: Apply is disabled, with the reason, and
    // no confirmation is asked (30 is above confirm_above 24 too).
    const c = card(page, 'alpha');
    await c.getByLabel('Desired concurrency for alpha (number)').fill('30');
    await c.getByRole('status').filter({ hasText: /At most 8 per change from \d+: choose between \d+ and \d+ now/ }).waitFor();
    assert.equal(await c.getByRole('button', { name: 'Apply' }).isDisabled(), true);
    await c.getByText(/Reachable now: 1–\d+/).waitFor();
    // What the page cannot know (the policy's validate hook): the server's
    // own message, as it is.
    const g = card(page, 'guarded');
    await g.getByLabel('Desired concurrency for guarded (number)').fill('6');
    await g.getByLabel('Reason').fill('forbidden by nobody');
    await g.getByRole('button', { name: 'Apply' }).click();
    await g.getByRole('alert').filter({ hasText: /Refused: .*reasons may not say forbidden/ }).waitFor();
    assert.equal(await page.getByRole('dialog').isVisible(), false);
    // 428: the server insists on confirmation the page did not ask for
    const r = await page.evaluate(async () => {
      const who = await (await fetch('/api/v1/whoami')).json();
      const res = await fetch('/api/v1/scaling/beta', { method: 'PUT', headers: { 'Content-Type': 'application/json',
        'X-CSRF-Token': who.csrf_token }, body: JSON.stringify({ desired_concurrency: 60, reason: 'x' }) });
      return res.status;
    });
    assert.ok([422, 428].includes(r));
  } finally { await page.close(); }
});

test('the_number_box_is_bounded_and_controls_follow_the_writes_flag_live', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'alpha');
    await c.getByLabel('Desired concurrency for alpha (number)').fill('200');
    await c.getByLabel('Reason').fill('out of range');
    await c.getByRole('status').filter({ hasText: /between 1 and 32/ }).waitFor();
    assert.equal(await c.getByRole('button', { name: 'Apply' }).isDisabled(), true);
    await c.getByLabel('Desired concurrency for alpha (number)').fill('4.5');
    await c.getByRole('status').filter({ hasText: /Enter a whole number/ }).waitFor();
    assert.equal(await page.getByRole('dialog').isVisible(), false);
    const off = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: false, reason: 'freeze' } });
    assert.equal(off.status, 200);
    await page.getByText(/Read-only: environment/).waitFor({ timeout: 5000 });
    await page.waitForFunction(() => !document.querySelector('button.primary'), null, { timeout: 5000 });
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'thaw' } });
    await page.getByRole('button', { name: 'Apply' }).first().waitFor({ timeout: 5000 });
  } finally {
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'thaw' } });
    await page.close();
  }
});

test('a_change_made_through_the_api_appears_without_reload', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'zero');
    const before = await c.locator('.stat .v').first().textContent();
    const target = before === '5' ? 6 : 5;
    const r = await putScaling(srv, 'zero', { desired_concurrency: target, reason: 'from a CI job' });
    assert.equal(r.status, 200, r.text);
    await c.locator('.stat .v').first().filter({ hasText: String(target) }).waitFor({ timeout: 3000 });
    await c.getByRole('cell', { name: 'from a CI job' }).waitFor({ timeout: 3000 });
  } finally { await page.close(); }
});

test('the_page_reconnects_by_itself_after_a_server_restart', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    await srv.stop();
    try {
      await page.getByText(/Live updates interrupted/).waitFor({ timeout: 5000 });
    } finally {
      await srv.start();                   // the next tests need it, whatever happened
    }
    const r = await putScaling(srv, 'zero', { desired_concurrency: 7, reason: 'after the restart' });
    assert.equal(r.status, 200, r.text);
    const c = card(page, 'zero');
    await c.locator('.stat .v').first().filter({ hasText: '7' }).waitFor({ timeout: 10000 });
    await c.getByRole('cell', { name: 'after the restart' }).waitFor({ timeout: 5000 });
    assert.equal(await page.getByText(/Live updates interrupted/).count(), 0);
  } finally { await page.close(); }
});

test('banners_tell_a_broken_policy_and_a_read_only_environment', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    writeFileSync(join(srv.policyDir, 'test.lua'), POLICY + '\nqueue "broken" { max = }\n');
    await page.reload();
    await page.getByText(/The policy file test\.lua:\d+ failed to load/).waitFor({ timeout: 5000 });
    writeFileSync(join(srv.policyDir, 'test.lua'), POLICY);
    const off = await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: false, reason: 'freeze for the test' } });
    assert.equal(off.status, 200, off.text);
    await page.reload();
    await page.getByText(/Read-only: environment "local" has writes turned off/).waitFor({ timeout: 5000 });
    assert.equal(await page.getByRole('button', { name: 'Apply' }).count(), 0);
  } finally {
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'thaw' } });
    await page.close();
  }
});

// ---- issue 17: layout, phones, dark mode -------------------------------------------------

async function noHorizontalScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

test('an_overview_table_lists_every_queue_sorts_searches_and_filters', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const table = page.getByRole('table', { name: /All queues/ });
    await table.getByRole('link', { name: 'ingestion' }).waitFor();
    assert.ok(await table.getByRole('row').count() >= 8);
    // Sort by queue name, both ways.
    await table.getByRole('button', { name: 'Queue' }).click();
    const names = async () => table.locator('tbody th').allTextContents();
    const asc = await names();
    assert.deepEqual(asc, [...asc].sort());
    await table.getByRole('button', { name: 'Queue' }).click();
    assert.deepEqual(await names(), [...asc].sort().reverse());
    assert.equal(await table.locator('th[aria-sort="descending"]').count(), 1);
    // Search narrows the table and the cards.
    await page.getByLabel('Search').fill('ingest');
    assert.deepEqual(await names(), ['ingestion']);
    assert.equal(await card(page, 'alpha').isVisible(), false);
    await page.getByLabel('Search').fill('');
    // Filter by status: "ok" shows only queues with nothing to look at.
    await page.getByLabel('Show').selectOption('ok');
    for (const row of await table.locator('tbody tr').all()) assert.match(await row.textContent(), /ok/);
    await page.getByLabel('Show').selectOption('');
    await card(page, 'alpha').waitFor();
  } finally { await page.close(); }
});

test('at_phone_width_nothing_scrolls_sideways_and_every_control_is_on_screen', async () => {
  const page = await loggedIn(srv.tokens.admin, { viewport: PHONE });
  try {
    await sleep(2500);                       // a snapshot or two, charts sized
    assert.ok(await noHorizontalScroll(page) <= 390, `page is ${await noHorizontalScroll(page)} px wide`);
    const c = card(page, 'ingestion');
    for (const target of [c.locator('.stat').filter({ hasText: 'pending updates' }),
      c.getByLabel('Desired concurrency for ingestion (number)'), c.getByRole('button', { name: 'Apply' })]) {
      await target.scrollIntoViewIfNeeded();
      assert.ok(await target.isVisible());
      const box = await target.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `off screen: ${JSON.stringify(box)}`);
    }
    // The worker detail and the history stay inside the screen too.
    await c.getByRole('button', { name: 'ingest-a' }).click();
    await page.getByRole('button', { name: 'Older' }).scrollIntoViewIfNeeded();
    assert.ok(await noHorizontalScroll(page) <= 390);
    if (process.env.SLUICE_SCREENSHOT) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(ROOT, 'docs', 'ui-phone.png') });
    }
  } finally { await page.close(); }
});

test('dark_mode_follows_the_system_and_the_toggle_is_remembered', async () => {
  const page = await loggedIn(srv.tokens.read, { colorScheme: 'dark' });
  try {
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(await theme(), 'dark');
    assert.equal(await bg(), 'rgb(18, 21, 27)');
    const toggle = page.getByRole('button', { name: 'Dark mode' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await toggle.click();
    assert.equal(await theme(), 'light');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    await page.reload();
    await card(page, 'ingestion').waitFor();
    assert.equal(await theme(), 'light', 'the choice survives a reload');
    // A system in light mode, and the toggle to dark: remembered as well.
    await page.emulateMedia({ colorScheme: 'light' });
    await page.getByRole('button', { name: 'Dark mode' }).click();
    await page.reload();
    await card(page, 'ingestion').waitFor();
    assert.equal(await theme(), 'dark');
    assert.equal(await bg(), 'rgb(18, 21, 27)');
    const icon = await page.evaluate(async () => (await fetch('/ui/favicon.svg')).headers.get('content-type'));
    assert.equal(icon, 'image/svg+xml');
  } finally { await page.close(); }
});

// ---- charts ---------------------------------------------------------------------------

test('charts_have_local_time_labelled_axes_with_units_a_legend_and_a_range_picker', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'ingestion');
    for (const name of ['waiting (jobs)', 'active (jobs)', 'done (jobs/s)', 'failed (jobs/s)',
      'desired (per worker)', 'running (per worker, average)', 'workers']) {
      await c.locator('.u-legend').getByText(name, { exact: true }).waitFor();
    }
    const axes = await c.locator('figure').evaluateAll((fs) => fs.map((f) => f.dataset.axes));
    assert.deepEqual(axes, ['waiting (jobs)|active (jobs)', 'jobs / s', 'per worker|workers']);
    // The time axis: whole minutes in local HH:MM, never ":18.600".
    const ticks = await c.locator('figure').first().getAttribute('data-x-ticks');
    assert.match(ticks, /^\d\d:\d\d( \d\d:\d\d)+$/);
    // The range picker asks the history endpoint for the range.
    const asked = page.waitForRequest((r) => r.url().includes('/admin/runtime-scaling/history?queue=ingestion&range=15m'));
    await page.getByText('15 min', { exact: true }).click();
    await asked;
    await c.getByText(/^Last 15m/).waitFor();
    await page.getByText('1 h', { exact: true }).click();
  } finally { await page.close(); }
});

test('charts_are_drawn_from_the_history_endpoint_with_change_markers', async () => {
  const r0 = await srv.request('GET', '/admin/runtime-scaling/history?queue=ingestion&range=15m', { token: srv.tokens.read });
  assert.equal(r0.status, 200, r0.text);
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'ingestion');
    await c.getByText(/one point per 10 s/).waitFor({ timeout: 5000 });
    assert.equal(await c.getByText(/keeps no history/).count(), 0);
    // The summary says what the canvas shows, from the history's series.
    const summary = await c.locator('figure').first().locator('.sr-only').textContent();
    assert.match(summary, /waiting \(jobs\) latest \d+/);
  } finally { await page.close(); }
});

// ---- the card tells the truth -------------------------------------------------------------

test('a_running_override_shows_its_end_and_end_now_makes_revert_to_permanent', async () => {
  const r = await putScaling(srv, 'beta', { desired_concurrency: 12, reason: 'for the sale', duration_s: 3600 });
  assert.equal(r.status, 200, r.text);
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'beta');
    const line = c.getByText(/Temporary override:/);
    await line.waitFor();
    const until = new Date(r.json.expires_at);
    const hm = `${String(until.getHours()).padStart(2, '0')}:${String(until.getMinutes()).padStart(2, '0')}`;
    assert.match(await c.locator('.override').textContent(), new RegExp(`12 until ${hm}, then ${r.json.revert_to}`));
    await c.getByRole('button', { name: 'End now' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), new RegExp(`back to ${r.json.revert_to}`));
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await c.getByRole('status').filter({ hasText: 'Not changed.' }).waitFor();
    await c.getByRole('button', { name: 'End now' }).click();
    await dialog.getByLabel('Reason').fill('sale is over');
    await dialog.getByRole('button', { name: 'End now' }).click();
    await c.getByRole('status').filter({ hasText: new RegExp(`Applied: beta is now ${r.json.revert_to}`) }).waitFor();
    await line.waitFor({ state: 'hidden', timeout: 5000 });
    const t = await srv.request('GET', '/api/v1/scaling/beta', { token: srv.tokens.read });
    assert.equal(t.json.expires_at, null);
    assert.equal(t.json.desired_concurrency, r.json.revert_to);
    await c.getByRole('cell', { name: 'sale is over' }).waitFor();
  } finally { await page.close(); }
});

test('a_stored_value_outside_reloaded_bounds_is_flagged', async () => {
  assert.equal((await putScaling(srv, 'narrow', { desired_concurrency: 12, reason: 'wide' })).status, 200);
  assert.equal((await putScaling(srv, 'narrow', { desired_concurrency: 20, reason: 'wider' })).status, 200);
  const page = await loggedIn(srv.tokens.admin);
  try {
    writeFileSync(join(srv.policyDir, 'test.lua'), POLICY.replace('queue "narrow"    { }', 'queue "narrow"    { max = 16 }'));
    const c = card(page, 'narrow');
    await c.getByText(/Out of bounds: the stored value 20 is outside the current bounds 1–16/).waitFor({ timeout: 5000 });
    // The controls show an allowed value, not 16 on the slider and 20 in the box.
    assert.equal(await c.getByLabel('Desired concurrency for narrow (number)').inputValue(), '16');
    assert.equal(await c.getByLabel('Desired concurrency for narrow', { exact: true }).inputValue(), '16');
    const row = page.getByRole('table', { name: /All queues/ }).getByRole('row').filter({ hasText: 'narrow' });
    await row.getByText('out of bounds').waitFor();
  } finally {
    writeFileSync(join(srv.policyDir, 'test.lua'), POLICY);
    await page.close();
  }
});

test('a_worker_taking_a_change_shows_updating_then_mismatch_and_its_alert_leads_to_it', async () => {
  // A worker that reports rarely, then stops: it stays live but never acks.
  const w = startWorker(redis, 'acks', ['--id', 'acks-slow', '--heartbeat-ms', '20000']);
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'acks');
    const row = c.getByRole('row').filter({ has: page.getByRole('button', { name: 'acks-slow' }) });
    await row.getByText('ok').waitFor({ timeout: 5000 });
    w.proc.kill('SIGSTOP');
    const t = await srv.request('GET', '/api/v1/scaling/acks', { token: srv.tokens.read });
    const to = t.json.desired_concurrency + 1;
    assert.equal((await putScaling(srv, 'acks', { desired_concurrency: to, reason: 'one more' })).status, 200);
    await row.getByText(/^updating/).waitFor({ timeout: 2000 });
    assert.equal(await row.getByText(/^mismatch/).count(), 0);
    await row.getByText(/^mismatch/).waitFor({ timeout: 9000 });
    // The alert names its rule and message, and leads to the worker.
    const alert = c.getByRole('listitem').filter({ hasText: 'acks_drift' });
    await alert.getByText(`acks-slow runs ${to - 1}, desired ${to}`).waitFor({ timeout: 5000 });
    await alert.getByRole('button', { name: 'show worker acks-slow' }).click();
    assert.match(await row.getAttribute('class'), /alerted/);
    const detail = c.locator('tr.detail:not([hidden])');
    await detail.getByText('agent').waitFor();
    await detail.getByText(/acks_drift \(firing\)/).waitFor();
  } finally {
    w.proc.kill('SIGCONT');
    await w.stop();
    await page.close();
  }
});

test('a_worker_row_opens_its_detail', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'ingestion');
    const b = c.getByRole('button', { name: 'ingest-a' });
    await b.click();
    assert.equal(await b.getAttribute('aria-expanded'), 'true');
    const d = c.locator('tr.detail:not([hidden])');
    for (const k of ['host', 'pid', 'agent', 'uptime', 'concurrency', 'version', 'rates', 'last error', 'state', 'last seen']) {
      await d.getByText(k, { exact: true }).waitFor();
    }
    await d.getByText(/libsluice/).waitFor();
    await b.click();
    assert.equal(await c.locator('tr.detail:not([hidden])').count(), 0);
  } finally { await page.close(); }
});

test('the_worker_detail_shows_host_pid_uptime_and_rates_from_the_server', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'ingestion');
    await c.getByRole('button', { name: 'ingest-a' }).click();
    const d = c.locator('tr.detail:not([hidden])');
    await d.getByText(/since sluiced first saw it/).waitFor({ timeout: 3000 });
    await d.getByText(/done \/ s, .* failed \/ s/).waitFor({ timeout: 3000 });
    assert.equal(await d.getByText('not reported').count(), 0);
  } finally { await page.close(); }
});

test('cooldown_and_budget_are_shown_before_apply_with_a_live_countdown', async () => {
  assert.equal((await putScaling(srv, 'cool', { desired_concurrency: 5, reason: 'start the cooldown' })).status, 200);
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 5, reason: 'one' })).status, 200);
  assert.equal((await putScaling(srv, 'budget', { desired_concurrency: 6, reason: 'two' })).status, 200);
  const page = await loggedIn(srv.tokens.admin);
  try {
    const k = card(page, 'cool');
    const left = async () => Number((await k.getByText(/cooldown: \d+ s left/).textContent()).match(/cooldown: (\d+) s left/)[1]);
    const first = await left();
    assert.ok(first > 20 && first <= 30, `cooldown ${first}`);
    await k.getByLabel('Desired concurrency for cool (number)').fill('6');
    await k.getByRole('status').filter({ hasText: /Cooldown: the next change is possible in \d+ s/ }).waitFor();
    assert.equal(await k.getByRole('button', { name: 'Apply' }).isDisabled(), true);
    await sleep(2200);
    assert.ok(await left() < first, 'the countdown runs between snapshots');
    // Applying the current value again is always allowed.
    await k.getByLabel('Desired concurrency for cool (number)').fill('5');
    assert.equal(await k.getByRole('button', { name: 'Apply' }).isDisabled(), false);
    const b = card(page, 'budget');
    await b.getByText(/budget: 0 of 2 changes left this hour/).waitFor();
    await b.getByLabel('Desired concurrency for budget (number)').fill('7');
    await b.getByRole('status').filter({ hasText: /budget of 2 changes per hour is used up/ }).waitFor();
    assert.equal(await b.getByRole('button', { name: 'Apply' }).isDisabled(), true);
  } finally { await page.close(); }
});

// ---- banners and history --------------------------------------------------------------------

test('the_read_only_banner_says_who_when_and_why', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: false, reason: 'release freeze' } });
    await page.getByText(/Read-only: environment "local" has writes turned off \(by root-admin at \d\d:\d\d: “release freeze”\)/)
      .waitFor({ timeout: 5000 });
  } finally {
    await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'thaw' } });
    await page.close();
  }
});

test('the_history_view_has_dates_request_ids_filters_and_pages', async () => {
  // More than a page of entries, and a flag change among them.
  for (let i = 0; i < 32; i++) {
    const r = await putScaling(srv, 'guarded', { desired_concurrency: 4 + (i % 2), reason: `entry ${i}` });
    assert.equal(r.status, 200, r.text);
  }
  await srv.request('PUT', '/api/v1/flags/writes', { token: srv.tokens.admin, json: { enabled: true, reason: 'flag for the history' } });
  const page = await loggedIn(srv.tokens.admin);
  try {
    const audit = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Request id' }) });
    await audit.getByRole('cell', { name: 'flag for the history' }).waitFor();
    await audit.getByText('flag writes: on → on').waitFor();
    assert.match(await audit.locator('tbody td.when').first().textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.match(await audit.locator('tbody td.rid').first().textContent(), /^[0-9a-z-]{8,}$/);
    // Paging: older, then back.
    const firstPage = await audit.locator('tbody tr').first().textContent();
    await page.getByRole('button', { name: 'Older' }).click();
    await page.locator('#audit-page').filter({ hasText: 'page 2' }).waitFor();
    assert.notEqual(await audit.locator('tbody tr').first().textContent(), firstPage);
    await page.getByRole('button', { name: 'Newer' }).click();
    await page.locator('#audit-page').filter({ hasText: 'newest' }).waitFor();
    // Filters: one queue, then refusals only.
    await page.getByLabel('Queue', { exact: true }).selectOption('guarded');
    await audit.getByRole('cell', { name: 'entry 31' }).waitFor();
    for (const q of await audit.locator('tbody td[data-label="queue"]').allTextContents()) assert.equal(q, 'guarded');
    await page.getByLabel('Outcome').selectOption('rejected');
    await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')]
      .every((tr) => /refused|No entries/.test(tr.textContent)));
  } finally { await page.close(); }
});

test('history_filters_by_actor_source_and_kind_on_the_server_and_shows_policy_reloads', async () => {
  const r = await srv.request('GET', '/api/v1/audit?kind=policy&limit=5', { token: srv.tokens.admin });
  assert.equal(r.status, 200, r.text);
  const page = await loggedIn(srv.tokens.admin);
  try {
    await page.getByLabel('Kind').selectOption('policy');
    await page.locator('#audit tbody').getByText('policy reload').first().waitFor({ timeout: 5000 });
    await page.getByLabel('Kind').selectOption('');
    await page.getByLabel('Actor').fill('ci-job');
    await page.getByLabel('Actor').press('Enter');
    await page.getByLabel('Source').selectOption('api');
    await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')]
      .every((tr) => /ci-job|No entries/.test(tr.textContent)));
    assert.equal(await page.getByText(/does not filter the history/).count(), 0);
  } finally { await page.close(); }
});

test('pause_asks_for_a_reason_and_a_duration_the_card_shows_paused_and_resume_ends_it', async () => {
  const w = startWorker(redis, 'pausable', ['--id', 'pausable-1']);
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'pausable');
    await c.getByRole('button', { name: 'Pause…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /stop taking new jobs/);
    // The reason is required: the dialog stays open without one.
    await dialog.getByRole('button', { name: 'Pause', exact: true }).click();
    assert.equal(await dialog.isVisible(), true);
    await dialog.getByLabel('Reason').fill('database maintenance');
    await dialog.getByLabel('For').selectOption('3600');
    await dialog.getByRole('button', { name: 'Pause', exact: true }).click();
    await c.getByRole('status').filter({ hasText: /Paused pausable \(version \d+\)/ }).waitFor();
    const banner = c.locator('.pause-box.paused');
    await banner.waitFor();
    assert.match(await banner.textContent(), /Paused: .*until \d\d:\d\d.*database maintenance/);
    await c.locator('.status .chip.s-paused').waitFor();
    await page.locator('#overview tbody tr', { hasText: 'pausable' }).locator('.chip.s-paused').waitFor();
    const t = await srv.request('GET', '/api/v1/scaling/pausable', { token: srv.tokens.read });
    assert.equal(t.json.paused, true);
    assert.equal(t.json.paused_reason, 'database maintenance');
    assert.ok(Math.abs(Date.parse(t.json.paused_until) - Date.now() - 3600e3) < 60e3);
    await c.getByRole('row', { name: /pausable-1/ }).filter({ hasText: 'paused' }).waitFor({ timeout: 5000 });
    assert.deepEqual(await axeViolations(page), []);

    // A reader sees the pause, and no button to change it.
    const reader = await loggedIn(srv.tokens.read);
    try {
      await card(reader, 'pausable').locator('.pause-box.paused').waitFor();
      assert.equal(await card(reader, 'pausable').getByRole('button', { name: 'Resume' }).count(), 0);
    } finally { await reader.close(); }

    await c.getByRole('button', { name: 'Resume' }).click();
    await dialog.waitFor();
    await dialog.getByLabel('Reason').fill('maintenance done');
    await dialog.getByRole('button', { name: 'Resume' }).click();
    await c.getByRole('status').filter({ hasText: /Resumed pausable/ }).waitFor();
    await banner.waitFor({ state: 'hidden', timeout: 5000 });
    assert.equal((await srv.request('GET', '/api/v1/scaling/pausable', { token: srv.tokens.read })).json.paused, false);
    // The history of all queues says it readably.
    await page.locator('#f-kind').selectOption('pause');
    await page.locator('#audit tbody tr', { hasText: 'maintenance done' }).filter({ hasText: 'resumed' }).waitFor();
    await page.locator('#audit tbody tr', { hasText: 'database maintenance' }).filter({ hasText: 'paused' }).waitFor();
  } finally {
    await page.close();
    await w.stop();
  }
});

// ---- accessibility and screenshots ------------------------------------------------------------

async function axeViolations(page) {
  await page.evaluate(AXE);                 // evaluated, not a <script>: the CSP stays as it is
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
}

test('no_serious_accessibility_violations_in_light_and_dark_on_desktop_and_phone', async () => {
  for (const viewport of [DESKTOP, PHONE]) {
    for (const colorScheme of ['light', 'dark']) {
      const page = await loggedIn(srv.tokens.admin, { viewport, colorScheme });
      try {
        await sleep(1500);
        await card(page, 'ingestion').getByRole('button', { name: 'ingest-a' }).click();
        const v = await axeViolations(page);
        assert.deepEqual(v, [], `${viewport.width} px, ${colorScheme}`);
      } finally { await page.close(); }
    }
  }
  // The login form and the confirmation dialog too.
  const page = await browser.newPage({ viewport: PHONE });
  try {
    await page.goto(`http://127.0.0.1:${srv.port}/`);
    await page.getByLabel('Token').waitFor();
    assert.deepEqual(await axeViolations(page), []);
  } finally { await page.close(); }
});

test('the_screenshots_for_the_docs', async () => {
  await produce(redis, 'ingestion', 3000, ['--sleep-ms', '400', '--fail-ratio', '0.05']);
  // Into docs/ only when asked (SLUICE_SCREENSHOT=1 make ui): tests do not
  // write into the source tree.
  const dir = process.env.SLUICE_SCREENSHOT ? join(ROOT, 'docs') : tempDir('sluice-shot-');
  try {
    for (const [file, colorScheme] of [['ui-overview.png', 'light'], ['ui-dark.png', 'dark']]) {
      const page = await loggedIn(srv.tokens.admin, { viewport: DESKTOP, colorScheme });
      try {
        await sleep(6000);                   // a few snapshots, so the chart has a line
        // Dark: a card with workers, charts and controls; light: the overview.
        if (colorScheme === 'dark') await card(page, 'ingestion').evaluate((e) => e.scrollIntoView({ block: 'start' }));
        const path = join(dir, file);
        await page.screenshot({ path, fullPage: false });
        assert.ok(statSync(path).size > 10000, 'screenshot is empty');
      } finally { await page.close(); }
    }
  } finally {
    if (!process.env.SLUICE_SCREENSHOT) rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the autoscaler (issue 19) ---------------------------------------------------------------

// The rules live in a file of their own, loaded by a hot reload for these
// tests only: the rest of the suite runs on the base policy.
const AUTOSCALE_POLICY = `
autoscale "auto" {
  every_s = 2, hold_after_manual_s = 600,
  rule = function(q, ctx) return 6, "six for the test" end,
}
autoscale "autodry" {
  every_s = 1, dry_run = true,
  rule = function(q, ctx) return 5, "would like five" end,
}
`;

async function autoscalers() {
  const r = await srv.request('GET', '/api/v1/autoscalers', { token: srv.tokens.read });
  assert.equal(r.status, 200, r.text);
  return new Map(r.json.items.map((x) => [x.queue, x]));
}

async function withAutoscale(fn) {
  const file = join(srv.policyDir, 'autoscale.lua');
  writeFileSync(file, AUTOSCALE_POLICY);
  try {
    assert.ok(await waitFor(async () => (await autoscalers()).size === 2, 10000), 'the rules did not load');
    await fn();
  } finally {
    rmSync(file, { force: true });
    await waitFor(async () => (await autoscalers()).size === 0, 10000);
  }
}

// Exact: "Queue auto" is also the start of "Queue autodry".
const qcard = (page, q) => page.getByRole('article', { name: `Queue ${q}`, exact: true });
const autoBlock = (page, q) => qcard(page, q).getByRole('region', { name: 'Autoscaler' });

test('the_autoscaler_block_shows_the_rule_its_decisions_and_dry_run_proposals_and_only_for_queues_with_a_rule', async () => {
  await withAutoscale(async () => {
    // The rule's 6 is applied (2 -> 6: within max_step 4); the dry run changes nothing.
    assert.ok(await waitFor(async () => (await srv.request('GET', '/api/v1/scaling/auto',
      { token: srv.tokens.read })).json.desired_concurrency === 6, 10000), 'the autoscaler did not apply 6');
    assert.ok(await waitFor(async () => (await autoscalers()).get('autodry').decisions.some((d) => d.outcome === 'dry_run'), 10000));
    assert.equal((await srv.request('GET', '/api/v1/scaling/autodry', { token: srv.tokens.read })).json.desired_concurrency, 2);
    const page = await loggedIn(srv.tokens.admin);
    try {
      const a = autoBlock(page, 'auto');
      await a.getByText('on', { exact: true }).waitFor({ timeout: 8000 });
      await a.getByText(/Every 2 s; scale-down waits 5 min; a manual change holds it 10 min/).waitFor();
      await a.getByText(/next evaluation \d\d:\d\d:\d\d/).waitFor();
      await a.getByText(/Last decision: .*(applied 2 → 6|unchanged at 6).*six for the test/).waitFor();
      await a.getByText('Recent decisions').click();
      await a.getByRole('row').filter({ hasText: 'applied 2 → 6' }).filter({ hasText: 'six for the test' }).waitFor();
      assert.equal(await a.getByRole('button', { name: 'Release' }).count(), 0, 'nothing holds it');
      await a.getByRole('button', { name: 'Hold…' }).waitFor();
      // A dry run: marked as such, its proposals shown without a click, nothing applied.
      const d = autoBlock(page, 'autodry');
      await d.getByText('dry run: proposes, never applies').waitFor();
      await d.getByRole('row').filter({ hasText: 'dry run: would set 2 → 5' }).filter({ hasText: 'would like five' }).first().waitFor();
      assert.equal(await qcard(page, 'autodry').locator('.stat').filter({ hasText: 'desired / worker' }).locator('.v').textContent(), '2');
      // No rule, no block.
      assert.equal(await autoBlock(page, 'ingestion').count(), 0);
      assert.equal(await qcard(page, 'ingestion').locator('.autoscale:not([hidden])').count(), 0);
      assert.deepEqual(await axeViolations(page), []);
      // Its changes in the history of all queues, by source.
      await page.getByLabel('Source').selectOption('autoscaler');
      await page.locator('#audit tbody tr', { hasText: 'autoscaler:auto' }).filter({ hasText: '2 → 6' }).waitFor();
    } finally { await page.close(); }

    // A reader sees the block, not the buttons.
    const reader = await loggedIn(srv.tokens.read);
    try {
      await autoBlock(reader, 'auto').getByText(/Last decision:/).waitFor({ timeout: 8000 });
      assert.equal(await autoBlock(reader, 'auto').getByRole('button').count(), 0);
    } finally { await reader.close(); }

    // A phone in dark mode: nothing wider than the screen, nothing axe minds.
    const phone = await loggedIn(srv.tokens.admin, { viewport: PHONE, colorScheme: 'dark' });
    try {
      const p = autoBlock(phone, 'autodry');
      await p.getByText(/dry run: would set 2 → 5/).first().waitFor({ timeout: 8000 });
      await p.scrollIntoViewIfNeeded();
      assert.ok(await noHorizontalScroll(phone) <= 390, `page is ${await noHorizontalScroll(phone)} px wide`);
      const box = await p.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `off screen: ${JSON.stringify(box)}`);
      assert.deepEqual(await axeViolations(phone), []);
    } finally { await phone.close(); }
  });
});

test('hold_and_release_go_through_the_dialog_with_a_reason_and_a_manual_change_holds_the_rule', async () => {
  await withAutoscale(async () => {
    const page = await loggedIn(srv.tokens.admin);
    try {
      const a = autoBlock(page, 'auto');
      await a.getByRole('button', { name: 'Hold…' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      assert.match(await dialog.textContent(), /keeps evaluating its rule .* changes nothing until the hold ends/);
      // The reason is required: the dialog stays open without one.
      await dialog.getByRole('button', { name: 'Hold', exact: true }).click();
      assert.equal(await dialog.isVisible(), true);
      // A hold always ends: no "until resumed" among the durations.
      assert.deepEqual(await dialog.locator('#confirm-duration option').allTextContents(),
        ['15 minutes', '1 hour', '2 hours', '8 hours', '1 day', '7 days']);
      await dialog.getByLabel('Reason').fill('deploy in progress');
      await dialog.getByLabel('For').selectOption('7200');
      await dialog.getByRole('button', { name: 'Hold', exact: true }).click();
      await a.getByRole('status').filter({ hasText: /Held: the autoscaler of auto applies nothing until \d\d:\d\d/ }).waitFor();
      await a.getByText(/Held until .* by root-admin: deploy in progress/).waitFor();
      await a.getByText('held: evaluates, applies nothing').waitFor();
      const held = (await autoscalers()).get('auto');
      assert.equal(held.hold.kind, 'hold');
      assert.equal(held.hold.by, 'root-admin');
      assert.equal(held.hold.reason, 'deploy in progress');
      assert.ok(Math.abs(Date.parse(held.held_until) - Date.now() - 7200e3) < 60e3, held.held_until);
      assert.deepEqual(await axeViolations(page), []);

      await a.getByRole('button', { name: 'Release' }).click();
      await dialog.waitFor();
      await dialog.getByLabel('Reason').fill('deploy done');
      await dialog.getByRole('button', { name: 'Release', exact: true }).click();
      await a.getByRole('status').filter({ hasText: 'Released: the autoscaler of auto applies its decisions again.' }).waitFor();
      await a.getByText(/Held until/).waitFor({ state: 'hidden', timeout: 5000 });
      assert.equal((await autoscalers()).get('auto').held_until, null);

      // A human change holds the rule for hold_after_manual_s: the block
      // says so without a reload (the change event asks again).
      assert.equal((await putScaling(srv, 'auto', { desired_concurrency: 4, reason: 'by hand' })).status, 200);
      await a.getByText(/Held until .* after a manual change by root-admin/).waitFor({ timeout: 8000 });
      assert.equal((await autoscalers()).get('auto').hold.kind, 'manual_change');
      await a.getByRole('button', { name: 'Release' }).waitFor();
    } finally { await page.close(); }
  });
});

test('a_server_without_the_autoscalers_route_shows_no_autoscaler_block', async () => {
  await withAutoscale(async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    try {
      // An older server answers 404 for the route; everything else is the real one.
      await page.route('**/api/v1/autoscalers', (r) => r.fulfill({ status: 404, contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'not_found', message: 'no route', details: {} } }) }));
      const asked = page.waitForResponse((r) => r.url().endsWith('/api/v1/autoscalers'));
      asked.catch(() => {});                  // awaited below; a failure before that must not leak
      await page.goto(`http://127.0.0.1:${srv.port}/`);
      await page.getByLabel('Token').fill(srv.tokens.admin);
      await page.getByRole('button', { name: 'Log in' }).click();
      await qcard(page, 'auto').waitFor();
      assert.equal((await asked).status(), 404);
      await qcard(page, 'auto').getByText('desired / worker').waitFor();
      assert.equal(await page.locator('.autoscale:not([hidden])').count(), 0);
      assert.equal(await autoBlock(page, 'auto').count(), 0);
    } finally { await page.close(); }
  });
});

// Last: it stops Redis.
test('a_change_above_approve_above_waits_for_a_second_person_who_approves_or_rejects_it', async () => {
  const requester = createToken(srv.dbUrl, 'ui-requester', 'scaling:read,scaling:write');
  const approver = createToken(srv.dbUrl, 'ui-approver', 'scaling:read,scaling:approve');
  let page = await loggedIn(requester);
  try {
    const c = card(page, 'gated');
    await c.getByLabel('Desired concurrency for gated (number)').fill('12');
    await c.getByLabel('Reason').fill('more for the batch');
    await c.getByRole('button', { name: 'Apply' }).click();
    await c.getByText(/Waiting for approval: 4 → 12 changes nothing/).waitFor();
    // Without scaling:approve: a note, no buttons.
    await page.getByText(/approving them needs the scaling:approve scope/).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Approve gated/ }).count(), 0);
  } finally { await page.close(); }
  page = await loggedIn(approver);
  try {
    const panel = page.getByRole('region', { name: 'Pending approvals' });
    await panel.getByRole('cell', { name: 'ui-requester' }).waitFor();
    await panel.getByRole('button', { name: 'Approve gated 4 to 12' }).click();
    await page.getByRole('dialog').getByText(/Approve gated from 4 to 12, asked by ui-requester/).waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Approve', exact: true }).click();
    await panel.getByText('Approved: gated is now 12 (version 1).').waitFor();
    await panel.getByText('No change is waiting for approval.').waitFor();
    // A second request, rejected with a reason (the dialog asks for one).
    const r = await putScaling(srv, 'gated', { desired_concurrency: 16, reason: 'even more' }, requester);
    assert.equal(r.status, 202, r.text);
    await panel.getByRole('button', { name: 'Reject gated 12 to 16' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByLabel('Reason').fill('not during the freeze');
    await dlg.getByRole('button', { name: 'Reject', exact: true }).click();
    await panel.getByText('Rejected: gated stays as it is.').waitFor();
    const last = (await srv.request('GET', '/api/v1/scaling/gated/history', { token: srv.tokens.read })).json.items[0];
    assert.deepEqual([last.outcome, last.error_code, last.actor, last.reason],
      ['rejected', 'approval_rejected', 'ui-approver', 'not during the freeze']);
    assert.equal((await srv.request('GET', '/api/v1/scaling/gated', { token: srv.tokens.read })).json.desired_concurrency, 12);
    assert.deepEqual(await axeViolations(page), []);
  } finally { await page.close(); }
});

test('revert_to_this_on_a_history_row_confirms_from_and_to_then_applies', async () => {
  assert.equal((await putScaling(srv, 'gated', { desired_concurrency: 8, reason: 'lower' })).status, 200);   // v2
  assert.equal((await putScaling(srv, 'gated', { desired_concurrency: 5, reason: 'lowest' })).status, 200);  // v3
  const page = await loggedIn(srv.tokens.admin);
  try {
    const c = card(page, 'gated');
    // The version in force offers no revert; an older one does.
    await c.getByRole('button', { name: 'Revert to this: gated version 2 (8)' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByText(/Revert gated to version 2: from 5 to 8\?/).waitFor();
    await dlg.getByRole('button', { name: 'Revert', exact: true }).click();
    await c.getByText(/Applied: gated is now 8 \(version 4\)/).waitFor();
    // The history redraws after the answer: version 3 then offers a revert,
    // version 4 (in force) none.
    await c.getByRole('button', { name: 'Revert to this: gated version 3 (5)' }).waitFor();
    assert.equal(await c.getByRole('button', { name: 'Revert to this: gated version 4 (8)' }).count(), 0);
    const [entry] = (await srv.request('GET', '/api/v1/scaling/gated/history', { token: srv.tokens.read })).json.items;
    assert.deepEqual([entry.outcome, entry.to, entry.version, entry.from_version], ['applied', 8, 4, 2]);
    // Above approve_above, a revert waits for approval like any change.
    await c.getByRole('button', { name: 'Revert to this: gated version 1 (12)' }).click();
    await dlg.getByRole('button', { name: 'Revert', exact: true }).click();
    await c.getByText(/Waiting for approval: 8 → 12/).waitFor();
    // At phone width the panel and the buttons stay on screen.
    await page.setViewportSize(PHONE);
    await page.getByRole('region', { name: 'Pending approvals' }).scrollIntoViewIfNeeded();
    assert.ok(await noHorizontalScroll(page) <= 390);
  } finally { await page.close(); }
});

test('with_redis_down_the_charts_say_so_and_rates_show_no_stale_numbers', async () => {
  const page = await loggedIn(srv.tokens.read);
  try {
    const c = card(page, 'ingestion');
    await redis.stop();
    try {
      await page.getByText(/Redis not answering/).waitFor({ timeout: 8000 });
      await c.getByText(/Redis is not answering: no new depth, throughput or worker samples/).waitFor({ timeout: 5000 });
      assert.equal(await c.locator('.stat').filter({ hasText: 'done / s' }).locator('.v').textContent(), '–');
      assert.equal(await c.locator('.stat').filter({ hasText: 'waiting' }).locator('.v').textContent(), '–');
    } finally {
      await redis.start();
    }
  } finally { await page.close(); }
});
