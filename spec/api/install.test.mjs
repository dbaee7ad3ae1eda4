// install.test.mjs — `make install` into a temporary DESTDIR, then the
// installed programs used from an empty directory, as an operator would:
// no flags naming scripts, UI or policies; the API and the UI answer.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, BUILD, BACKEND, tempDir, rawRequest } from './harness.mjs';

const skip = BACKEND !== 'sqlite' && 'install layout does not depend on the store backend';
let dest, cwd, prefix, sysconf, version;

function run(cmd, args, opts = {}) {
  try {
    const stdout = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000, ...opts });
    return { status: 0, stdout, stderr: '' };
  } catch (e) {
    return { status: e.status, stdout: e.stdout || '', stderr: e.stderr || String(e.message) };
  }
}

before(() => {
  if (skip) return;
  dest = tempDir('sluice-install-');
  cwd = tempDir('sluice-empty-');
  prefix = join(dest, 'usr/local');
  sysconf = join(prefix, 'etc');
  version = readFileSync(join(ROOT, 'Makefile'), 'utf8').match(/^VERSION\s*:=\s*(\S+)/m)[1];
  const r = run(join(ROOT, 'tools/install.sh'), [], {
    env: { ...process.env, BUILD, DESTDIR: dest, PREFIX: '/usr/local' },
  });
  assert.equal(r.status, 0, r.stderr);
});

after(() => {
  if (dest) rmSync(dest, { recursive: true, force: true });
  if (cwd) rmSync(cwd, { recursive: true, force: true });
});

test('install_puts_every_part_in_its_place', { skip }, () => {
  for (const f of ['bin/sluiced', 'bin/sluicectl', 'bin/sluice-worker']) {
    assert.ok(statSync(join(prefix, f)).mode & 0o111, `${f} not executable`);
  }
  for (const f of ['lib/libsluice.a', 'lib/libsluice.so.0', 'lib/libsluice.so', 'include/sluice.h',
    'lib/pkgconfig/sluice.pc', 'lib/systemd/system/sluiced.service', 'share/sluice/scripts/scaling.lua',
    'share/sluice/ui/index.html', 'share/sluice/ui/js/main.js', 'share/sluice/ui/vendor/uPlot.iife.min.js',
    'share/sluice/policies/queues.lua', 'share/doc/sluice/api.md', 'share/sluice/redis/users.acl']) {
    assert.ok(existsSync(join(prefix, f)), `missing ${f}`);
  }
  assert.ok(existsSync(join(sysconf, 'sluice/policies/queues.lua')), 'operator policies not seeded');
  // The UI ships its files, never the npm tree behind them.
  const ui = readdirSync(join(prefix, 'share/sluice/ui')).sort();
  assert.deepEqual(ui, ['app.js', 'favicon.svg', 'index.html', 'js', 'style.css', 'vendor']);
  // The unit names the installed paths, not placeholders.
  const unit = readFileSync(join(prefix, 'lib/systemd/system/sluiced.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/sluiced serve$/m);
  assert.match(unit, /^DynamicUser=yes$/m);
  assert.doesNotMatch(unit, /@[A-Z]+@/);
});

test('install_keeps_operator_policies_on_reinstall', { skip }, () => {
  const mine = join(sysconf, 'sluice/policies/queues.lua');
  writeFileSync(mine, '-- edited by an operator\n');
  const r = run(join(ROOT, 'tools/install.sh'), [], {
    env: { ...process.env, BUILD, DESTDIR: dest, PREFIX: '/usr/local' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /keeping \/usr\/local\/etc\/sluice\/policies/);
  assert.equal(readFileSync(mine, 'utf8'), '-- edited by an operator\n');
  // Put the shipped policy back for the tests below.
  writeFileSync(mine, readFileSync(join(ROOT, 'policies/queues.lua')));
});

test('installed_programs_print_their_version', { skip }, () => {
  const d = run(join(prefix, 'bin/sluiced'), ['--version'], { cwd });
  assert.equal(d.status, 0, d.stderr);
  assert.equal(d.stdout.trim(), `sluiced ${version}`);
  const c = run(join(prefix, 'bin/sluicectl'), ['--version'], { cwd });
  assert.equal(c.status, 0, c.stderr);
  assert.equal(c.stdout.trim(), `sluicectl ${version}`);
});

test('pkg_config_file_builds_a_worker_against_the_installed_library', { skip }, () => {
  const src = join(cwd, 'w.c');
  writeFileSync(src, '#include <sluice.h>\n#include <stdio.h>\nint main(void) { void *f = (void *)sluice_agent_start; return f == NULL; }\n');
  const env = { ...process.env, PKG_CONFIG_PATH: join(prefix, 'lib/pkgconfig'), PKG_CONFIG_SYSROOT_DIR: dest };
  const flags = run('pkg-config', ['--cflags', '--libs', 'sluice'], { env });
  assert.equal(flags.status, 0, flags.stderr);
  assert.match(flags.stdout, new RegExp(`-I${dest}/usr/local/include`));
  const bin = join(cwd, 'w');
  const cc = run('cc', ['-o', bin, src, ...flags.stdout.trim().split(/\s+/)], { env });
  assert.equal(cc.status, 0, cc.stderr);
  // Linked against the shared library by its soname, found in the install.
  // (A sanitizer build's library needs its runtime; order does not matter here.)
  const ranEnv = { ...process.env, LD_LIBRARY_PATH: join(prefix, 'lib'),
    ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:verify_asan_link_order=0` };
  const ran = run(bin, [], { env: ranEnv });
  assert.equal(ran.status, 0, ran.stderr);
  const needed = run('readelf', ['-d', bin]);
  assert.match(needed.stdout, /NEEDED.*libsluice\.so\.0/);
});

test('installed_sluiced_serves_api_and_ui_from_an_empty_directory', { skip }, async () => {
  const sluiced = join(prefix, 'bin/sluiced');
  const db = `sqlite:${join(cwd, 'sluice.db')}`;
  const tok = run(sluiced, ['token', 'create', '--db', db, '--name', 'op', '--scopes', 'admin'], { cwd });
  assert.equal(tok.status, 0, tok.stderr);
  const token = tok.stdout.trim();
  // No --scripts, --ui or --policies: it must find its own, and nothing
  // from the repository (the empty cwd has no scripts/ or ui/).
  const env = { ...process.env };
  for (const k of ['SLUICE_SCRIPTS', 'SLUICE_UI', 'SLUICE_POLICIES']) delete env[k];
  const proc = spawn(sluiced, ['serve', '--listen', '127.0.0.1:0', '--db', db, '--redis', 'redis://127.0.0.1:1'],
    { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  try {
    const listening = await new Promise((resolveP, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line:\n${log}`)), 15000);
      proc.stderr.on('data', (d) => {
        log += d;
        for (const line of log.split('\n')) {
          try {
            const j = JSON.parse(line);
            if (j.msg === 'listening') { clearTimeout(timer); resolveP(j); }
          } catch { /* partial line */ }
        }
      });
      proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`sluiced exited ${code}:\n${log}`)); });
    });
    assert.equal(listening.scripts, join(prefix, 'share/sluice/scripts'));
    assert.equal(listening.ui, join(prefix, 'share/sluice/ui'));
    assert.equal(listening.policies, join(sysconf, 'sluice/policies'));
    const port = listening.port;
    assert.equal((await rawRequest(port, 'GET', '/healthz')).status, 200);
    const list = await rawRequest(port, 'GET', '/api/v1/scaling', { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(list.status, 200, list.text);
    const names = list.json.items.map((q) => q.queue).sort();
    assert.deepEqual(names, ['build', 'ingestion', 'workflow']);   // the shipped default policies
    const page = await rawRequest(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    assert.match(page.text, /<title>[^<]*Sluice/);
    const chart = await rawRequest(port, 'GET', '/ui/vendor/uPlot.iife.min.js');
    assert.equal(chart.status, 200);
    assert.equal((await rawRequest(port, 'GET', '/ui/package.json')).status, 404);
  } finally {
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, `installed sluiced did not stop cleanly:\n${log.slice(-3000)}`);
  }
});

test('systemd_unit_is_valid_for_systemd', { skip: skip || (run('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze') }, () => {
  // A real prefix (no DESTDIR), so systemd can check that ExecStart exists.
  const pfx = tempDir('sluice-prefix-');
  try {
    const r = run(join(ROOT, 'tools/install.sh'), [], { env: { ...process.env, BUILD, PREFIX: pfx } });
    assert.equal(r.status, 0, r.stderr);
    const v = run('systemd-analyze', ['verify', join(pfx, 'lib/systemd/system/sluiced.service')]);
    assert.equal(v.status, 0, v.stderr);
    // verify only warns about unknown or misspelt settings; any word from it is a defect.
    assert.equal(v.stderr.trim(), '', v.stderr);
  } finally { rmSync(pfx, { recursive: true, force: true }); }
});
