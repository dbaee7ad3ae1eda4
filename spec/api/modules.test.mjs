// modules.test.mjs — the engine's module graph has no cycle (issue 15: "no
// module imports one that imports it back"). A module is a .c/.h pair, or a
// family sharing a prefix and a private header (store_*, policy_*,
// sandbox_*, bind_*, http). app.h names handles only and includes no module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

const ENGINE = join(ROOT, 'engine');
const FAMILIES = ['store', 'policy', 'sandbox', 'bind'];
const moduleOf = (file) => {
  const base = file.replace(/\.[ch]$/, '');
  return FAMILIES.find((f) => base === f || base.startsWith(`${f}_`)) ?? base;
};

function graph() {
  const uses = new Map();
  for (const file of readdirSync(ENGINE).filter((f) => /\.[ch]$/.test(f))) {
    const from = moduleOf(file);
    if (!uses.has(from)) uses.set(from, new Set());
    const text = readFileSync(join(ENGINE, file), 'utf8');
    for (const [, name] of text.matchAll(/^#include "([a-z0-9_]+)\.h"/gm)) {
      const to = moduleOf(`${name}.h`);
      if (to !== from) uses.get(from).add(to);
    }
  }
  return uses;
}

test('no_engine_module_imports_one_that_imports_it_back', () => {
  const uses = graph();
  const state = new Map();
  const cycles = [];
  const visit = (m, path) => {
    state.set(m, 'open');
    for (const n of uses.get(m) ?? []) {
      if (state.get(n) === 'open') cycles.push([...path.slice(path.indexOf(n)), m, n].join(' -> '));
      else if (!state.has(n)) visit(n, [...path, m]);
    }
    state.set(m, 'done');
  };
  for (const m of uses.keys()) if (!state.has(m)) visit(m, []);
  assert.deepEqual(cycles, []);
});

test('app_h_includes_no_module', () => {
  const text = readFileSync(join(ENGINE, 'app.h'), 'utf8');
  assert.deepEqual([...text.matchAll(/^#include "([^"]+)"/gm)].map((m) => m[1]), []);
});
