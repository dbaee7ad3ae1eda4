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
  assert.match(text, /make install .*PREFIX=\/usr\/local DESTDIR=\/stage$/m);
  assert.match(text, /^COPY --from=build \/stage\/ \/$/m);
  assert.match(text, /^EXPOSE 8080$/m);
  assert.match(text, /^ENTRYPOINT \["\/usr\/local\/bin\/sluiced"\]$/m);
  assert.match(text, /^USER 10001:10001$/m);
  assert.match(text, /^HEALTHCHECK [^]*?curl -fsS "http:\/\/\$h:\$\{SLUICE_LISTEN##\*:\}\/healthz"/m);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
  for (const p of ['build', '**/node_modules', '.git']) assert.match(ignore, new RegExp(`^${p.replace(/[.*]/g, '\\$&')}$`, 'm'));
});

// What the image really is, read from the Dockerfile's last stage and the
// Makefile, so that the manifests cannot drift from it.
function imageFacts() {
  const text = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const run = text.slice(text.lastIndexOf('\nFROM '));
  const one = (re) => { const m = run.match(re); assert.ok(m, `Dockerfile: no match for ${re}`); return m[1]; };
  const [uid, gid] = one(/^USER (\S+)$/m).split(':').map(Number);
  const env = Object.fromEntries([...one(/^ENV (.+)$/m).matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  const prefix = text.match(/make install .*PREFIX=(\S+)/)[1];
  return {
    image: readFileSync(join(ROOT, 'Makefile'), 'utf8').match(/^IMAGE\s*\?=\s*(\S+)/m)[1],
    uid, gid, env, prefix,
    port: Number(one(/^EXPOSE (\d+)$/m)),
    volume: one(/^VOLUME (\S+)$/m),
    health: one(/^HEALTHCHECK .*curl -fsS "http:\/\/\$h:\$\{SLUICE_LISTEN##\*:\}(\/[a-z]+)"/m),
    entrypoint: JSON.parse(one(/^ENTRYPOINT (\[.*\])$/m)),
  };
}

for (const dir of ['minikube', 'production']) {
  test(`${dir}: manifests agree with the image (name, port, probes, user, paths)`, () => {
    const img = imageFacts();
    assert.equal(img.uid, 10001);
    assert.deepEqual(img.entrypoint, [`${img.prefix}/bin/sluiced`]);
    assert.equal(img.env.SLUICE_LISTEN.split(':').pop(), String(img.port));
    const docs = load(dir);
    const pods = docs.filter((d) => d.kind === 'Deployment' && d.spec.template.spec.containers.some((c) => c.image?.startsWith('sluice:')));
    assert.ok(pods.length >= 1);
    for (const dep of pods) {
      const spec = dep.spec.template.spec;
      const sc = spec.securityContext;
      assert.equal(sc.runAsNonRoot, true, `${dep.metadata.name}: runAsNonRoot`);
      assert.equal(sc.runAsUser, img.uid, `${dep.metadata.name}: runAsUser`);
      assert.equal(sc.runAsGroup, img.gid, `${dep.metadata.name}: runAsGroup`);
      for (const c of [...(spec.initContainers || []), ...spec.containers]) {
        assert.equal(c.image, img.image, `${dep.metadata.name}/${c.name}: image`);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
        // A command, when given, is a program the image installs.
        if (c.command) assert.match(c.command[0], new RegExp(`^${img.prefix}/bin/(sluiced|sluicectl|sluice-worker)$`));
      }
    }
    const dep = find(docs, 'Deployment', 'sluiced');
    const c = dep.spec.template.spec.containers[0];
    assert.equal(c.ports[0].containerPort, img.port);
    assert.equal(c.livenessProbe.httpGet.path, img.health);
    assert.equal(env(c).SLUICE_LISTEN, `0.0.0.0:${img.port}`);
    const svc = find(docs, 'Service', 'sluiced');
    assert.equal(svc.spec.ports[0].targetPort, c.ports[0].name);
    // A read-only root needs a writable /tmp.
    const tmp = c.volumeMounts.find((m) => m.mountPath === '/tmp');
    assert.ok(tmp && dep.spec.template.spec.volumes.find((v) => v.name === tmp.name).emptyDir, 'no /tmp emptyDir');
    if (dir === 'minikube') {
      // The SQLite file lives on the image's volume, in both containers.
      assert.equal(env(c).SLUICE_DB, img.env.SLUICE_DB);
      assert.ok(img.env.SLUICE_DB.startsWith(`sqlite:${img.volume}/`));
      for (const k of [...dep.spec.template.spec.initContainers, c]) {
        assert.ok(k.volumeMounts.some((m) => m.mountPath === img.volume), `${k.name}: ${img.volume} not mounted`);
      }
      assert.equal(dep.spec.template.spec.securityContext.fsGroup, img.gid, 'the volume must be writable by the image user');
    }
  });
}
