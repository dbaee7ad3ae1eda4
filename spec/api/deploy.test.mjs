// deploy.test.mjs — the manifests parse as YAML and say what the docs say:
// images, ports, probes, volumes, replicas, the Secret, the ConfigMap that
// carries exactly the shipped policies. (Building the image and running a
// cluster need Docker and minikube, which this machine does not have.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './harness.mjs';

function load(dir) {
  const docs = [];
  for (const f of readdirSync(join(ROOT, 'deploy', dir)).filter((x) => x.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(join(ROOT, 'deploy', dir, f), 'utf8'))) {
      assert.equal(d.errors.length, 0, `${dir}/${f}: ${d.errors.join('; ')}`);
      docs.push(d.toJS());
    }
  }
  return docs;
}
const find = (docs, kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const env = (c) => Object.fromEntries(c.env.map((e) => [e.name, e.value ?? e.valueFrom]));

function checkSluiced(docs, { replicas, envName }) {
  const dep = find(docs, 'Deployment', 'sluiced');
  assert.ok(dep, 'no sluiced Deployment');
  assert.equal(dep.spec.replicas, replicas);
  const c = dep.spec.template.spec.containers[0];
  assert.equal(c.image, 'sluice:0.1');
  assert.deepEqual(c.ports, [{ name: 'http', containerPort: 8080 }]);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'http' });
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory);
  const e = env(c);
  assert.equal(e.SLUICE_LISTEN, '0.0.0.0:8080');
  assert.equal(e.SLUICE_REDIS, 'redis://redis:6379');
  assert.equal(e.SLUICE_POLICIES, '/etc/sluice/policies');
  assert.equal(e.SLUICE_ENV, envName);
  const mount = c.volumeMounts.find((m) => m.mountPath === '/etc/sluice/policies');
  const vol = dep.spec.template.spec.volumes.find((v) => v.name === mount.name);
  assert.equal(vol.configMap.name, 'sluice-policies');
  const svc = find(docs, 'Service', 'sluiced');
  assert.equal(svc.spec.ports[0].port, 8080);
  assert.deepEqual(svc.spec.selector, dep.spec.template.metadata.labels);
  assert.equal(find(docs, 'Service', 'redis').spec.ports[0].port, 6379);
  // the ConfigMap is a directory of exactly the shipped policies
  const cm = find(docs, 'ConfigMap', 'sluice-policies');
  for (const f of ['queues.lua', 'alerts.lua'])
    assert.equal(cm.data[f].trimEnd(), readFileSync(join(ROOT, 'policies', f), 'utf8').trimEnd(), `${f} differs from policies/`);
  return { dep, c, e };
}

test('minikube: one replica on SQLite on a volume claim, redis, policies, a worker', () => {
  const docs = load('minikube');
  const { dep, c, e } = checkSluiced(docs, { replicas: 1, envName: 'minikube' });
  assert.equal(dep.spec.strategy.type, 'Recreate');
  assert.equal(e.SLUICE_DB, 'sqlite:/data/sluice.db');
  const data = c.volumeMounts.find((m) => m.mountPath === '/data');
  const vol = dep.spec.template.spec.volumes.find((v) => v.name === data.name);
  assert.equal(vol.persistentVolumeClaim.claimName, 'sluice-data');
  assert.ok(find(docs, 'PersistentVolumeClaim', 'sluice-data'));
  const worker = find(docs, 'Deployment', 'ingestion-worker').spec.template.spec.containers[0];
  assert.equal(worker.command[0], '/usr/local/bin/sluice-worker');
  assert.deepEqual(worker.args.slice(0, 4), ['--queue', 'ingestion', '--redis', 'redis://redis:6379']);
});

test('production: replicas on PostgreSQL from a Secret, probes, a disruption budget', () => {
  const docs = load('production');
  const { dep, e } = checkSluiced(docs, { replicas: 2, envName: 'production' });
  assert.deepEqual(e.SLUICE_DB, { secretKeyRef: { name: 'sluice-db', key: 'url' } });
  assert.equal(dep.spec.template.spec.initContainers[0].args[0], 'migrate');
  const pdb = find(docs, 'PodDisruptionBudget', 'sluiced');
  assert.equal(pdb.spec.minAvailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(find(docs, 'Secret', 'sluice-db').stringData.url.startsWith('postgres://'), true);
});

test('the Dockerfile builds on Debian 12 in two stages with make install and runs sluiced on 8080', () => {
  const text = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
  assert.equal((text.match(/^FROM docker\.io\/library\/debian:12-slim/gm) || []).length, 2);
  assert.match(text, /^RUN .*make install .*PREFIX=\/usr\/local DESTDIR=\/stage$/m);
  assert.match(text, /^COPY --from=build \/stage\/ \/$/m);
  assert.match(text, /^EXPOSE 8080$/m);
  assert.match(text, /^ENTRYPOINT \["\/usr\/local\/bin\/sluiced"\]$/m);
  assert.match(text, /^USER 10001$/m);
  assert.match(text, /^HEALTHCHECK .*\/healthz/m);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
  for (const p of ['build', '**/node_modules', '.git']) assert.match(ignore, new RegExp(`^${p.replace(/[.*]/g, '\\$&')}$`, 'm'));
});
