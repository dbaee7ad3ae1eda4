// redis_tls.mjs — a private redis-server as production runs it: TLS with
// certificates from a throw-away CA (made with the openssl CLI), and the
// shipped least-privilege ACL users (deploy/redis/users.acl) with random
// passwords. Nothing is mocked; everything binds to 127.0.0.1.
//
//   const r = await startSecureRedis();             // TLS + ACL
//   r.url('worker')      // rediss://sluice-worker:<pw>@127.0.0.1:<port>/0
//   r.cli('worker', 'PUBLISH', 'sluice:reports', 'x')   // {status, stdout, stderr}
//   new Redis(r.redisOptions('sluiced'))                 // ioredis, same user
//   await r.stop();                                      // kills it, removes the dir
//
// Options:
//   tls = true            TLS only (--port 0 --tls-port P); false: plain --port P
//   acl = true            load users.acl (placeholders replaced by hashed random
//                         passwords); false: no ACL file (see requirepass)
//   prefix = 'sluice'     the key and channel prefix the ACL file grants
//   requireClientCert     --tls-auth-clients yes (default optional: clients
//                         with and without a certificate are accepted)
//   serverSan             the server certificate's subjectAltName
//                         (default 'IP:127.0.0.1,DNS:localhost'); give another
//                         one to test host-name verification
//   requirepass           with acl = false: true (random) or a string, the
//                         default user's password; users.* all map to it
//   aclFile               another ACL file to load instead of the shipped one
//
// users: one entry per role found in the ACL file (a `>CHANGE_ME_<ROLE>`
// placeholder names the role): sluiced, worker (sluice-worker), jobs
// (sluice-jobs), admin (sluice-admin). cli() and redisOptions() take a role
// name or an object { user, password, tls, caFile, cert, key } to override
// any part, e.g. cli({ ...r.users.worker, password: 'wrong' }, 'PING');
// { cert: null } presents no client certificate, { timeout } bounds redis-cli.
// redisOptions(role, { tls, clientCert, db, ...more ioredis options }).
// Also returned: caKey, serverCert, serverKey, aclFile (the rendered one),
// logFile and log(), prefix, requireClientCert, proc.
//
// Other exports: createCa(dir, name, subject) and createCert(dir, ca, name,
// { cn, san, usage: 'server'|'client' }) (e.g. a second CA that must not be
// trusted), renderAcl(text, prefix), USERS_ACL.
//
// Note: redis-cli --tls verifies the chain but not the host name; use a Node
// client (redisOptions) or sluiced itself to test host-name checks.

import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
export const USERS_ACL = join(ROOT, 'deploy', 'redis', 'users.acl');
const HOST = '127.0.0.1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolveP, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolveP(port));
    });
  });
}

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

// A self-signed CA in dir: <name>.crt and <name>.key (EC P-256: fast to make).
export function createCa(dir, name = 'ca', subject = '/CN=Sluice test CA') {
  const caFile = join(dir, `${name}.crt`), caKey = join(dir, `${name}.key`);
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { caFile, caKey };
}

// A certificate <name>.crt/<name>.key signed by ca; usage 'server' or 'client'.
export function createCert(dir, ca, name, { cn = name, san, usage = 'server' } = {}) {
  const cert = join(dir, `${name}.crt`), key = join(dir, `${name}.key`), csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
  writeFileSync(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${usage === 'client' ? 'clientAuth' : 'serverAuth'}`,
    ...(san ? [`subjectAltName=${san}`] : []),
  ].join('\n') + '\n');
  openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.caFile, '-CAkey', ca.caKey, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext]);
  rmSync(csr);
  return { cert, key };
}

// users.acl with every `>CHANGE_ME_<ROLE>` replaced by the SHA-256 of a
// random password (`#<hex>`, as docs/security.md tells operators to do) and
// the key/channel prefix `sluice:` by `<prefix>:`. Returns { text, users }.
export function renderAcl(template, prefix = 'sluice') {
  const users = {};
  let text = template.replace(/^user (\S+)(.*?) >CHANGE_ME_([A-Z0-9_]+)/gm, (all, name, mid, tag) => {
    const role = tag.toLowerCase();
    const password = randomBytes(18).toString('hex');
    users[role] = { user: name, password };
    return `user ${name}${mid} #${createHash('sha256').update(password).digest('hex')}`;
  });
  if (prefix !== 'sluice') text = text.replace(/([~&])sluice:/g, `$1${prefix}:`);
  return { text, users };
}

// Servers still running when the process exits (a test that threw) are
// killed, and their directories removed.
const live = new Map();
process.on('exit', () => {
  for (const [p, dir] of live) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  }
});

export async function startSecureRedis({ tls = true, acl = true, prefix = 'sluice', requireClientCert = false,
                                         serverSan = 'IP:127.0.0.1,DNS:localhost', requirepass,
                                         aclFile = USERS_ACL } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-redis-'));
  let ca, server, client;
  try {
    ca = createCa(dir);
    server = createCert(dir, ca, 'server', { cn: 'localhost', san: serverSan, usage: 'server' });
    client = createCert(dir, ca, 'client', { cn: 'sluice-test-client', usage: 'client' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`openssl failed: ${e.stderr || e.message}`);
  }

  let users = {};
  const args = ['--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir,
    '--logfile', join(dir, 'redis.log'), '--daemonize', 'no'];
  if (acl) {
    const rendered = renderAcl(readFileSync(aclFile, 'utf8'), prefix);
    users = rendered.users;
    writeFileSync(join(dir, 'users.acl'), rendered.text, { mode: 0o600 });
    args.push('--aclfile', join(dir, 'users.acl'));
  } else {
    const pw = requirepass === true ? randomBytes(18).toString('hex') : requirepass || null;
    if (pw) args.push('--requirepass', pw);
    const anyone = { user: pw ? 'default' : null, password: pw };
    users = { sluiced: anyone, worker: anyone, jobs: anyone, admin: anyone, default: anyone };
  }
  if (tls) {
    args.push('--tls-cert-file', server.cert, '--tls-key-file', server.key, '--tls-ca-cert-file', ca.caFile,
      '--tls-auth-clients', requireClientCert ? 'yes' : 'optional');
  }

  const r = {
    port: 0, tls, dir, prefix, requireClientCert,
    caFile: ca.caFile, caKey: ca.caKey, clientCert: client.cert, clientKey: client.key,
    serverCert: server.cert, serverKey: server.key,
    aclFile: acl ? join(dir, 'users.acl') : null,
    logFile: join(dir, 'redis.log'),
    users,
    proc: null,
    log() { return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''; },
    // A URL for a role: rediss://USER:PASSWORD@127.0.0.1:PORT/0.
    url(role, { tls: useTls = r.tls, withPassword = true, db = 0 } = {}) {
      const u = who(role);
      let cred = '';
      if (u.user) cred = encodeURIComponent(u.user);
      if (withPassword && u.password) cred += `:${encodeURIComponent(u.password)}`;
      return `${useTls ? 'rediss' : 'redis'}://${cred ? `${cred}@` : ''}${HOST}:${r.port}/${db}`;
    },
    // redis-cli as a role; -e makes an error reply a non-zero status. Never
    // throws; status is null when redis-cli was killed (timeout).
    cli(role, ...cmd) {
      const u = who(role);
      const a = ['-h', HOST, '-p', String(r.port), '-e', '--no-auth-warning'];
      if (u.user) a.push('--user', u.user);
      if (u.password) a.push('--pass', u.password);
      if (u.tls ?? r.tls) {
        a.push('--tls', '--cacert', u.caFile || r.caFile, '--sni', 'localhost');
        // cert: null in the role object means "present no certificate".
        const cert = 'cert' in u ? u.cert : r.requireClientCert ? r.clientCert : null;
        const key = 'key' in u ? u.key : r.requireClientCert ? r.clientKey : null;
        if (cert) a.push('--cert', cert, '--key', key);
      }
      try {
        const stdout = execFileSync('redis-cli', [...a, ...cmd.map(String)], {
          encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: u.timeout || 10000,
        });
        return { status: 0, stdout, stderr: '' };
      } catch (e) {
        return { status: e.status, stdout: e.stdout || '', stderr: e.stderr || String(e.message) };
      }
    },
    // ioredis options (also what BullMQ's `connection` takes) for a role.
    redisOptions(role, { tls: useTls = r.tls, clientCert = r.requireClientCert, db = 0, ...extra } = {}) {
      const u = who(role);
      const o = { host: HOST, port: r.port, db, ...(u.user ? { username: u.user } : {}),
        ...(u.password ? { password: u.password } : {}), ...extra };
      if (useTls) {
        o.tls = { ca: readFileSync(u.caFile || r.caFile), servername: 'localhost' };
        if (clientCert) Object.assign(o.tls, { cert: readFileSync(r.clientCert), key: readFileSync(r.clientKey) });
      }
      return o;
    },
    async start() {
      let lastErr;
      for (let attempt = 0; attempt < 3; attempt++) {
        this.port = await freePort();
        const portArgs = tls ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
        this.proc = spawn('redis-server', [...args, ...portArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
        live.set(this.proc, dir);
        let stderr = '';
        this.proc.stderr.on('data', (d) => { stderr += d; });
        let gone = false;
        this.exited = new Promise((res) => this.proc.on('exit', (code, signal) => {
          gone = true; live.delete(this.proc); res({ code, signal });
        }));
        const probe = users.admin || { user: null, password: null };
        for (let t = Date.now(); Date.now() - t < 10000 && !gone; await sleep(50)) {
          const p = this.cli({ ...probe, timeout: 2000, cert: tls ? this.clientCert : null, key: this.clientKey }, 'PING');
          if (p.status === 0 && p.stdout.trim() === 'PONG') return this;
        }
        lastErr = `redis-server did not start (attempt ${attempt + 1}):\n${stderr}\n${this.log()}`;
        if (!gone) this.proc.kill('SIGKILL');
        await this.exited;
        this.proc = null;
        if (!/Address already in use/i.test(this.log() + stderr)) break;   // not a port race
      }
      rmSync(dir, { recursive: true, force: true });
      throw new Error(lastErr);
    },
    async stop() {
      if (this.proc) {
        const p = this.proc;
        this.proc = null;
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 3000);
        await this.exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  function who(role) {
    if (role && typeof role === 'object') return role;
    const u = r.users[role];
    if (!u) throw new Error(`no Redis role '${role}' (have: ${Object.keys(r.users).join(', ')})`);
    return u;
  }
  return r.start();
}
