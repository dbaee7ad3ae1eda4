// slowloris.test.mjs — clients that trickle a request head one line at a
// time are cut off at the head deadline, and a client from another address
// is answered promptly meanwhile. Also: the UI's security headers, and no
// npm files served from ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, rawRequest, sleep, waitFor } from './harness.mjs';

let srv;
before(async () => { srv = await startServer({ extraArgs: ['--header-timeout', '2'] }); });
after(async () => { await srv?.cleanup(); });

test('a_thousand_slow_heads_from_four_addresses_are_cut_and_a_fifth_address_is_served', async () => {
  const sockets = [];
  let closed = 0;
  const trickle = [];
  for (let a = 2; a <= 5; a++) {
    for (let i = 0; i < 250; i++) {
      const s = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: `127.0.0.${a}` });
      s.on('error', () => {});
      s.on('close', () => { closed++; });
      s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: sluice\r\n'));
      sockets.push(s);
    }
  }
  // One header line per 500 ms: never idle long enough for an idle timeout.
  const timer = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write('X-Slow: 1\r\n'); }, 500);
  trickle.push(timer);
  try {
    await waitFor(() => sockets.filter((s) => s.readyState === 'open').length >= 990, 5000);
    const t = Date.now();
    const r = await new Promise((resolveP, reject) => {
      const req = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: '127.0.0.6' }, () =>
        req.write('GET /healthz HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n'));
      let text = '';
      req.on('data', (d) => { text += d; });
      req.on('end', () => resolveP(text));
      req.on('error', reject);
    });
    assert.match(r, /^HTTP\/1\.1 200/);
    assert.ok(Date.now() - t < 1500, `the fifth address waited ${Date.now() - t} ms`);
    // The head deadline (2 s) cuts the slow ones, trickle or not.
    assert.ok(await waitFor(() => closed >= 990, 6000), `only ${closed} of 1000 slow connections were closed`);
    assert.ok(await waitFor(() => /no request head within the deadline/.test(srv.log), 2000));
  } finally {
    clearInterval(timer);
    for (const s of sockets) s.destroy();
  }
});

test('the_ui_is_served_with_security_headers_and_never_the_npm_tree', async () => {
  const page = await rawRequest(srv.port, 'GET', '/');
  assert.equal(page.status, 200);
  assert.match(page.headers['content-security-policy'], /default-src 'self'/);
  assert.match(page.headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(page.headers['x-frame-options'], 'DENY');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  for (const p of ['/ui/package.json', '/ui/package-lock.json', '/ui/node_modules/uplot/package.json',
    '/ui/node_modules/uplot/dist/uPlot.iife.min.js']) {
    assert.equal((await rawRequest(srv.port, 'GET', p)).status, 404, p);
  }
  assert.equal((await rawRequest(srv.port, 'GET', '/ui/vendor/uPlot.iife.min.js')).status, 200);
});
