// ui.test.mjs — the admin UI in real Chromium (Debian's, driven by
// playwright-core; never a downloaded browser) against a real sluiced,
// Redis and workers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, putScaling, createToken, ROOT, TEST_POLICY, tempDir } from '../api/harness.mjs';
import { writeFileSync, statSync, rmSync } from 'node:fs';
import { startRedis, startWorker, produce, waitFor, sleep, freePort } from '../api/fleet_harness.mjs';

const POLICY = TEST_POLICY + `
queue "ingestion" { max = 64, max_step = 16, confirm_above = 48, default = 8 }
`;

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

async function loggedIn(token) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
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

test('refusals_are_shown_as_readable_text', async () => {
  const page = await loggedIn(srv.tokens.admin);
  try {
    // 422: a step larger than max_step
    const c = card(page, 'alpha');
    await c.getByLabel('Desired concurrency for alpha (number)').fill('30');
    await c.getByLabel('Reason').fill('too far');
    await c.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();   // 30 > 24
    await c.getByRole('alert').filter({ hasText: /Refused: alpha: a change of \d+ .* larger than max_step 8/ }).waitFor();
    // 429: the cooldown of "cool", with when to retry
    const k = card(page, 'cool');
    for (const v of ['5', '6']) {
      await k.getByLabel('Desired concurrency for cool (number)').fill(v);
      await k.getByLabel('Reason').fill(`cooldown ${v}`);
      await k.getByRole('button', { name: 'Apply' }).click();
      await sleep(300);
    }
    await k.getByRole("alert").filter({ hasText: /changed less than 30s ago \(cooldown\); retry in \d+s/ }).waitFor();
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
    await c.getByRole('button', { name: 'Apply' }).click();
    await c.getByRole('status').filter({ hasText: /between 1 and 32/ }).waitFor();
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

test('the_overview_screenshot_for_the_docs', async () => {
  await produce(redis, 'ingestion', 3000, ['--sleep-ms', '400', '--fail-ratio', '0.05']);
  const page = await loggedIn(srv.tokens.admin);
  try {
    await sleep(6000);                     // a few snapshots, so the chart has a line
    await card(page, 'ingestion').scrollIntoViewIfNeeded();
    // Into docs/ only when asked (SLUICE_SCREENSHOT=1 make ui): tests do not
    // write into the source tree.
    const dir = process.env.SLUICE_SCREENSHOT ? join(ROOT, 'docs') : tempDir('sluice-shot-');
    const path = join(dir, 'ui-overview.png');
    await page.screenshot({ path, fullPage: false });
    assert.ok(statSync(path).size > 10000, 'screenshot is empty');
    if (!process.env.SLUICE_SCREENSHOT) rmSync(dir, { recursive: true, force: true });
  } finally { await page.close(); }
});
