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

function checkSluiced(docs, { replicas, envName, redisUrl }) {
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
  assert.equal(e.SLUICE_REDIS, redisUrl);
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
  const { dep, c, e } = checkSluiced(docs, { replicas: 1, envName: 'minikube', redisUrl: 'redis://redis:6379' });
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
  const { dep, e } = checkSluiced(docs, { replicas: 2, envName: 'production', redisUrl: 'rediss://sluiced@redis:6379' });
  assert.deepEqual(e.SLUICE_DB, { secretKeyRef: { name: 'sluice-db', key: 'url' } });
  assert.equal(dep.spec.template.spec.initContainers[0].args[0], 'migrate');
  const pdb = find(docs, 'PodDisruptionBudget', 'sluiced');
  assert.equal(pdb.spec.minAvailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(find(docs, 'Secret', 'sluice-db').stringData.url.startsWith('postgres://'), true);
});

// The file a container sees at path: [volume, key] of the Secret mounted there.
function secretFile(spec, container, path) {
  const m = container.volumeMounts.find((v) => path.startsWith(`${v.mountPath}/`));
  assert.ok(m, `${container.name}: nothing mounted at ${path}`);
  const vol = spec.volumes.find((v) => v.name === m.name);
  assert.ok(vol.secret, `${container.name}: ${m.mountPath} is not a Secret`);
  const file = path.slice(m.mountPath.length + 1);
  const item = vol.secret.items?.find((i) => i.path === file);
  return { secret: vol.secret.secretName, key: item ? item.key : file, vol };
}

test('production: Redis over TLS with the ACL users from Secrets; sluiced as user sluiced', () => {
  const docs = load('production');
  const arg = (args, flag) => { const i = args.indexOf(flag); assert.ok(i >= 0, `redis: no ${flag}`); return args[i + 1]; };
  // Redis: TLS only, on the Service's port, certificates and users from Secrets
  const redis = find(docs, 'Deployment', 'redis');
  const rspec = redis.spec.template.spec;
  const rc = rspec.containers[0];
  assert.equal(arg(rc.args, '--port'), '0');
  assert.equal(arg(rc.args, '--tls-port'), '6379');
  assert.equal(rc.ports[0].containerPort, 6379);
  assert.equal(find(docs, 'Service', 'redis').spec.ports[0].port, 6379);
  assert.deepEqual(secretFile(rspec, rc, arg(rc.args, '--tls-cert-file')).secret, 'redis-tls');
  assert.deepEqual(secretFile(rspec, rc, arg(rc.args, '--tls-key-file')).secret, 'redis-tls');
  assert.deepEqual(secretFile(rspec, rc, arg(rc.args, '--tls-ca-cert-file')).secret, 'redis-tls');
  const aclFile = secretFile(rspec, rc, arg(rc.args, '--aclfile'));
  assert.deepEqual([aclFile.secret, aclFile.key], ['redis-acl', 'users.acl']);
  assert.equal(rspec.securityContext.runAsNonRoot, true);
  assert.equal(rc.securityContext.allowPrivilegeEscalation, false);
  assert.equal(rc.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(rc.securityContext.capabilities.drop, ['ALL']);

  // sluiced: rediss:// as user sluiced, the password from a Secret, the CA mounted alone
  const dep = find(docs, 'Deployment', 'sluiced');
  const spec = dep.spec.template.spec;
  const c = spec.containers[0];
  const e = env(c);
  const url = new URL(e.SLUICE_REDIS);
  assert.deepEqual([url.protocol, url.username, url.password, url.hostname, url.port], ['rediss:', 'sluiced', '', 'redis', '6379']);
  assert.deepEqual(e.SLUICE_REDIS_PASSWORD, { secretKeyRef: { name: 'sluiced-redis', key: 'password' } });
  const ca = secretFile(spec, c, e.SLUICE_REDIS_CA);
  assert.deepEqual([ca.secret, ca.key], ['redis-tls', 'ca.crt']);
  assert.deepEqual(ca.vol.secret.items, [{ key: 'ca.crt', path: 'ca.crt' }], 'sluiced must get the CA only, not the server key');
  for (const k of spec.initContainers) assert.ok(!env(k).SLUICE_REDIS_PASSWORD, 'migrate needs no Redis password');

  // every Secret the manifests use has an example, with the keys they read
  const used = [];
  for (const d of docs.filter((x) => x.kind === 'Deployment')) {
    const ps = d.spec.template.spec;
    for (const v of ps.volumes || []) if (v.secret) used.push([v.secret.secretName, (v.secret.items || []).map((i) => i.key)]);
    for (const k of [...(ps.initContainers || []), ...ps.containers])
      for (const x of k.env || []) if (x.valueFrom?.secretKeyRef) used.push([x.valueFrom.secretKeyRef.name, [x.valueFrom.secretKeyRef.key]]);
  }
  for (const [f] of [['--tls-cert-file'], ['--tls-key-file'], ['--tls-ca-cert-file'], ['--aclfile']]) {
    const s = secretFile(rspec, rc, arg(rc.args, f));
    used.push([s.secret, [s.key]]);
  }
  for (const [name, keys] of used) {
    const sec = find(docs, 'Secret', name);
    assert.ok(sec, `no example of the Secret ${name} in secret.example.yaml`);
    for (const k of keys) assert.ok(k in sec.stringData, `Secret ${name} has no key ${k}`);
  }
  // the example ACL is the shipped one, and the example password is sluiced's
  const acl = find(docs, 'Secret', 'redis-acl').stringData['users.acl'];
  const shipped = readFileSync(join(ROOT, 'deploy', 'redis', 'users.acl'), 'utf8');
  assert.equal(acl.trimEnd(), shipped.trimEnd(), 'secret.example.yaml redis-acl differs from deploy/redis/users.acl');
  const pw = (user) => shipped.match(new RegExp(`^user ${user} on >(\\S+)`, 'm'))?.[1];
  assert.equal(find(docs, 'Secret', 'sluiced-redis').stringData.password, pw('sluiced'));
  assert.equal(find(docs, 'Secret', 'sluice-worker-redis').stringData.password, pw('sluice-worker'));
  assert.match(shipped, /^user default off /m);
});

test('production: NetworkPolicies let only sluiced and workers reach Redis, only the ingress reach sluiced', () => {
  const docs = load('production');
  const np = (name) => { const p = find(docs, 'NetworkPolicy', name); assert.ok(p, `no NetworkPolicy ${name}`); return p.spec; };
  const labels = (n) => find(docs, 'Deployment', n).spec.template.metadata.labels;
  const redis = np('redis');
  assert.deepEqual(redis.podSelector.matchLabels, labels('redis'));
  assert.deepEqual(redis.policyTypes, ['Ingress']);
  assert.equal(redis.ingress.length, 1);
  assert.deepEqual(redis.ingress[0].from, [
    { podSelector: { matchLabels: labels('sluiced') } },
    { podSelector: { matchLabels: { 'sluice.io/worker': 'true' } } },
  ]);
  assert.deepEqual(redis.ingress[0].ports, [{ protocol: 'TCP', port: find(docs, 'Deployment', 'redis').spec.template.spec.containers[0].ports[0].containerPort }]);
  const sluiced = np('sluiced');
  assert.deepEqual(sluiced.podSelector.matchLabels, labels('sluiced'));
  assert.deepEqual(sluiced.policyTypes, ['Ingress']);
  assert.equal(sluiced.ingress.length, 1);
  assert.deepEqual(sluiced.ingress[0].from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }]);
  assert.deepEqual(sluiced.ingress[0].ports, [{ protocol: 'TCP', port: find(docs, 'Deployment', 'sluiced').spec.template.spec.containers[0].ports[0].containerPort }]);
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
