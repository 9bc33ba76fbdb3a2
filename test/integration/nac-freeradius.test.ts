/**
 * The NAC loop with a real RADIUS server (issue 8; CLIENTS.md §5): devices enroll over EST with
 * strongSwan `pki --est` from a running `fleetca serve`; FreeRADIUS 3.2 is configured only from
 * `fleetca export freeradius` (its tls-config.conf `$INCLUDE`d, ca_file and ca_path from the export)
 * plus a RADIUS server certificate that fleetca issued; `eapol_test` authenticates with EAP-TLS.
 *
 * The loop runs twice:
 *  - crl:  FreeRADIUS checks the CRLs of the `--watch`ed export; the reload command restarts it
 *          (it reads a new CRL only at start);
 *  - ocsp: FreeRADIUS asks fleetca's OCSP responder on every authentication; never restarted.
 * In each: a valid device → Access-Accept; revoke → Reject; hold → Reject; release → Accept; a
 * foreign CA's certificate, an IDevID from the manufacturing CA and an expired certificate → Reject.
 * Last, `fleetca ca rollover --intermediate` gives two device CAs with different names: cameras of
 * both → Accept, the IDevID still → Reject (FreeRADIUS trusts the device CAs, not the root).
 * The time from the fleetca command returning to the first Access-Reject is printed (README "NAC
 * integration: FreeRADIUS" quotes it).
 *
 * The config copy sets crl.debounce to 10 minutes, so the server's own CRL publisher never reacts
 * to a change during the test: every fresh CRL here is one the export published itself, which is
 * what "the export contains every status change recorded before it started" needs to prove.
 *
 * freeradius, eapol_test, pki and openssl must be installed (.ci/run installs them): without them
 * the file fails, it does not skip. NAC_KEEP=1 keeps the temporary folder (raddb, logs) to look at.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, opensslOk, startServe, type CliResult, type RunningServe } from '../helpers/cli.js';
import { fleetcaBatch, freePort, pemBlocks, pki } from '../helpers/est.js';
import { crlEntryOf, crlText, pollUntil } from '../helpers/revocation.js';

const BIN = path.resolve('test/helpers/fleetca-bin.ts');
const TOOLS = ['freeradius', 'eapol_test', 'pki', 'openssl'];
const RADIUS_SECRET = 'fleetca-nac-test';
const MODES = ['crl', 'ocsp'] as const;
type Mode = (typeof MODES)[number];

/** Devices enrolled over EST with pki, per mode: one to revoke, one to hold and release. */
const EST_DEVICES = MODES.flatMap((m) => [`${m}-revoke`, `${m}-hold`]);

let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let httpPort: number;
const f = (n: string) => path.join(dir, n);
/** name → { cert file (with its chain), key file, serial (openssl form), CN } */
const creds = new Map<string, { cert: string; key: string; serial: string; cn: string }>();
/** Measured delays, printed at the end. */
const timings: string[] = [];
/** Child processes to stop in afterAll: watchers (ChildProcess) and FreeRADIUS (pid files). */
const children = new Set<ChildProcess>();
const pidFiles = new Set<string>();

function missingTools(): string[] {
  return TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
}

/** A UDP port that was free a moment ago (for FreeRADIUS's auth listener). */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function cli(args: string[]): CliResult {
  const r = fleetca(args, env);
  if (r.code !== 0) throw new Error(`fleetca ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

const serialOf = (certFile: string) => new X509Certificate(readFileSync(certFile)).serialNumber.toUpperCase();

function newKeyAndCsr(name: string, subj: string): { key: string; csr: string } {
  const key = f(`${name}.key`);
  const csr = f(`${name}.csr`);
  opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', subj, '-out', csr]);
  return { key, csr };
}

beforeAll(async () => {
  const missing = missingTools();
  if (missing.length > 0) throw new Error(`the NAC test needs ${missing.join(', ')}: apt-get install -y freeradius freeradius-utils eapoltest strongswan-pki openssl`);

  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-nac-'));
  chmodSync(dir, 0o711); // as in the other integration tests: a data-dir cluster must reach into it
  cfgDir = configCopy((d) => {
    const file = path.join(d, 'ca.yaml');
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
    doc.setIn(['crl', 'debounce'], '10m');
    writeFileSync(file, doc.toString());
    // the RADIUS server's certificate: serverAuth from the device CA, issued by an admin
    writeFileSync(
      path.join(d, 'profiles', 'radius-server.yaml'),
      YAML.stringify({
        description: 'RADIUS servers doing EAP-TLS (server side), issued by the device CA',
        kind: 'device',
        issuer: 'device-ca',
        validity: '365d',
        keys: { types: ['P-256', 'P-384', 'rsa'] },
        keyUsage: ['digitalSignature', 'keyEncipherment'],
        extendedKeyUsage: ['serverAuth'],
        subject: { commonName: 'deviceId' },
        san: { includeMacs: false },
        enrollment: { secrets: false },
      }),
    );
  });
  httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'nac freeradius tests' };
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);

  // a server whose stderr nobody reads while spawnSync blocks this process: errors only
  const serving = startServe({ ...env, LOG_LEVEL: 'error' }, ['--http-port', String(httpPort)]).then((s) => (server = s));
  serving.catch(() => undefined);

  const radius = newKeyAndCsr('radius-server', '/CN=radius-1');
  const idevid = newKeyAndCsr('idevid', '/CN=idevid-0001/serialNumber=SN0001');
  const expired = newKeyAndCsr('expired', '/CN=exp-cam');
  const batch = await fleetcaBatch(
    [
      ['ca', 'chain'],
      ['issue', '--profile', 'radius-server', '--device', 'radius-1', '--csr', radius.csr, '--chain'],
      ['issue', '--profile', 'manufacturing-idevid', '--device', 'idevid-0001', '--csr', idevid.csr, '--chain'],
      // an expired certificate, the way an operator gets a short one: an advisory that shortens it
      ['device', 'add', 'exp-cam', '--model', 'NacTestCam', '--firmware', '1.0'],
      ['advisory', 'apply', '--model', 'NacTestCam', '--firmware', '<2', '--action', 'shorten', '--validity', '2s', '--reason', 'test: a certificate that expires at once'],
      ['issue', '--profile', 'camera', '--device', 'exp-cam', '--csr', expired.csr, '--chain'],
      ...EST_DEVICES.map((d) => ['secret', 'create', '--device', d, '--profile', 'camera']),
    ],
    env,
  );
  batch.forEach((r, i) => expect(r.code, `batch command ${i}: ${r.stderr}`).toBe(0));
  const [chain, radiusCert, idevidCert, , , expiredCert, ...secrets] = batch;
  writeFileSync(f('chain.pem'), chain!.stdout);
  const [deviceCa, root] = pemBlocks(chain!.stdout);
  writeFileSync(f('root.pem'), root!);
  writeFileSync(f('device-ca.pem'), deviceCa!);
  writeFileSync(f('radius-server.crt'), radiusCert!.stdout);
  for (const [name, r, cn, key] of [
    ['idevid', idevidCert!, 'idevid-0001', idevid.key],
    ['expired', expiredCert!, 'exp-cam', expired.key],
  ] as const) {
    writeFileSync(f(`${name}.crt`), r.stdout);
    creds.set(name, { cert: f(`${name}.crt`), key, serial: serialOf(f(`${name}.crt`)), cn });
  }
  // a foreign CA and a device certificate from it, made with openssl
  opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('foreign-ca.key'), '-out', f('foreign-ca.pem'), '-subj', '/O=Elsewhere/CN=Foreign Device CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const foreign = newKeyAndCsr('foreign', '/CN=foreign-cam');
  writeFileSync(f('foreign.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  opensslOk(['x509', '-req', '-in', foreign.csr, '-CA', f('foreign-ca.pem'), '-CAkey', f('foreign-ca.key'), '-CAcreateserial', '-days', '30', '-extfile', f('foreign.ext'), '-out', f('foreign-leaf.pem')]);
  writeFileSync(f('foreign.crt'), readFileSync(f('foreign-leaf.pem'), 'utf8') + readFileSync(f('foreign-ca.pem'), 'utf8'));
  creds.set('foreign', { cert: f('foreign.crt'), key: foreign.key, serial: serialOf(f('foreign.crt')), cn: 'foreign-cam' });

  await serving;
  // the devices enroll over EST with strongSwan pki (CLIENTS.md §1), trusting the root and the device CA
  EST_DEVICES.forEach((device, i) => {
    const gen = pki(['--gen', '--type', 'ecdsa', '--size', '256', '--outform', 'pem'], dir);
    expect(gen.code, gen.stderr).toBe(0);
    writeFileSync(f(`${device}.key`), gen.stdout);
    const req = pki(['--req', '--type', 'priv', '--in', f(`${device}.key`), '--dn', `CN=${device}`, '--outform', 'pem'], dir);
    expect(req.code, req.stderr).toBe(0);
    writeFileSync(f(`${device}.csr`), req.stdout);
    const est = pki(
      ['--est', '--url', server!.httpsUrl, '--cacert', f('root.pem'), '--cacert', f('device-ca.pem'), '--in', f(`${device}.csr`), '--userpass', `${device}:${secrets[i]!.stdout.trim()}`, '--outform', 'pem'],
      dir,
    );
    expect(est.code, est.stderr).toBe(0);
    writeFileSync(f(`${device}.crt`), est.stdout);
    creds.set(device, { cert: f(`${device}.crt`), key: f(`${device}.key`), serial: serialOf(f(`${device}.crt`)), cn: device });
  });
}, 240_000);

afterAll(async () => {
  for (const c of children) await stopChild(c);
  for (const p of pidFiles) stopPidFile(p);
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (timings.length) console.log(`\nNAC FreeRADIUS timings (fleetca command returned → first RADIUS answer showing it):\n  ${timings.join('\n  ')}\n`);
  if (dir && !process.env.NAC_KEEP) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

function stopChild(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

function stopPidFile(file: string): void {
  try {
    process.kill(Number(readFileSync(file, 'utf8').trim()), 'SIGTERM');
  } catch {
    // already gone
  }
}

/** Waits until a log file contains `pattern` (at least `count` times); returns the file. */
async function waitForLog(file: string, pattern: RegExp, what: string, timeoutMs = 30_000, count = 1): Promise<string> {
  let text = '';
  await pollUntil(
    what,
    () => {
      text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      return (text.match(new RegExp(pattern.source, 'g')) ?? []).length >= count;
    },
    { timeoutMs, intervalMs: 50 },
  );
  return text;
}

/** `fleetca export freeradius --watch ...` in the background, its output in `log`. */
async function startWatcher(args: string[], log: string): Promise<ChildProcess> {
  const fd = openSync(log, 'a');
  const c = spawn(process.execPath, ['--import', 'tsx', BIN, 'export', 'freeradius', '--watch', ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'error' }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  children.add(c);
  await waitForLog(log, /watching: /, `the watcher's start (${log})`);
  return c;
}

interface Radius {
  mode: Mode;
  root: string;
  out: string;
  port: number;
  log: string;
  pidFile: string;
  /** The reload command: restarts FreeRADIUS and returns once it is ready. */
  restart: string;
}

/**
 * A raddb whose whole trust configuration is fleetca's export: radiusd.conf `$INCLUDE`s
 * `<out>/tls-config.conf` inside the eap module's tls-config; the rest is the minimal file of
 * CLIENTS.md §5 (own port on 127.0.0.1, one client, reject_delay 0) and the server key pair.
 */
async function makeRadius(mode: Mode, name: string = mode): Promise<Radius> {
  const root = f(`radius-${name}`);
  const raddb = path.join(root, 'raddb');
  mkdirSync(path.join(raddb, 'run'), { recursive: true });
  mkdirSync(path.join(raddb, 'log'), { recursive: true });
  const out = path.join(root, 'fleetca');
  const port = await freeUdpPort();
  writeFileSync(
    path.join(raddb, 'radiusd.conf'),
    `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = ${raddb}
sbindir = /usr/sbin
logdir = ${raddb}/log
raddbdir = ${raddb}
confdir = ${raddb}
run_dir = ${raddb}/run
libdir = /usr/lib/freeradius
pidfile = ${raddb}/run/radiusd.pid
name = radiusd
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
proxy_requests = no
client localhost {
	ipaddr = 127.0.0.1
	secret = ${RADIUS_SECRET}
	require_message_authenticator = no
}
thread pool {
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
}
modules {
	eap {
		default_eap_type = tls
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 256
		tls-config tls-common {
			$INCLUDE ${out}/tls-config.conf
			private_key_file = ${f('radius-server.key')}
			certificate_file = ${f('radius-server.crt')}
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "1.2"
			ecdh_curve = ""
		}
		tls {
			tls = tls-common
		}
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = ${port}
	}
	authorize {
		eap {
			ok = return
		}
	}
	authenticate {
		eap
	}
	post-auth {
		Post-Auth-Type REJECT {
			eap
		}
	}
}
`,
  );
  const log = path.join(root, 'radius.log');
  const pidFile = path.join(root, 'freeradius.pid');
  const restart = path.join(root, 'restart-freeradius.sh');
  // threaded, not -X: `freeradius -X` takes ~1.5 s to exit after serving EAP, -f stops at once
  writeFileSync(
    restart,
    `#!/bin/sh
# Restarts FreeRADIUS and returns once it is ready (the reload command of the CRL mode).
LOG='${log}'
PIDF='${pidFile}'
ms() { date +%s%3N; }
t0=$(ms)
if [ -f "$PIDF" ]; then
  pid=$(cat "$PIDF")
  # gone, or a zombie its new parent has not reaped yet (it has closed its socket)
  if kill "$pid" 2>/dev/null; then
    while state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) && [ "$state" != Z ]; do sleep 0.01; done
  fi
fi
t1=$(ms)
before=$(grep -c 'Ready to process requests' "$LOG" 2>/dev/null)
before=\${before:-0}
setsid freeradius -f -l stdout -d '${raddb}' >> "$LOG" 2>&1 < /dev/null &
echo $! > "$PIDF"
i=0
while [ $i -lt 1000 ]; do
  now=$(grep -c 'Ready to process requests' "$LOG")
  if [ "\${now:-0}" -gt "$before" ]; then
    echo "stop $((t1 - t0)) ms, start $(($(ms) - t1)) ms" >> '${path.join(root, 'restarts.log')}'
    exit 0
  fi
  kill -0 "$(cat "$PIDF")" 2>/dev/null || { echo "freeradius exited:"; tail -20 "$LOG"; exit 1; }
  sleep 0.01
  i=$((i + 1))
done
echo "freeradius not ready after 10 s"
exit 1
`,
    { mode: 0o755 },
  );
  pidFiles.add(pidFile);
  for (const name of creds.keys()) writeEapConf(root, name);
  return { mode, root, out, port, log, pidFile, restart };
}

/** The eapol_test configuration of a credential (`<root>/<name>.eap.conf`); the chain in its certificate file is sent too. */
function writeEapConf(root: string, name: string): void {
  const c = creds.get(name)!;
  writeFileSync(
    path.join(root, `${name}.eap.conf`),
    `network={\n\tkey_mgmt=IEEE8021X\n\teap=TLS\n\tidentity="${c.cn}"\n\tca_cert="${f('chain.pem')}"\n\tclient_cert="${c.cert}"\n\tprivate_key="${c.key}"\n\teapol_flags=0\n}\n`,
  );
}

function runRestart(r: Radius): void {
  const res = spawnSync('/bin/sh', [r.restart], { encoding: 'utf8', timeout: 30_000 });
  if (res.status !== 0) throw new Error(`FreeRADIUS did not start: ${res.stdout}${res.stderr}`);
}

type Answer = 'accept' | 'reject' | 'none';

/**
 * One EAP-TLS authentication with eapol_test (CLIENTS.md §5). `timeoutS`: how long eapol_test waits
 * for the whole exchange; a conversation cut by a FreeRADIUS restart gets no answer until then.
 */
function eap(r: Radius, name: string, timeoutS = 5): { answer: Answer; out: string } {
  const res = spawnSync('eapol_test', ['-c', path.join(r.root, `${name}.eap.conf`), '-a', '127.0.0.1', '-p', String(r.port), '-s', RADIUS_SECRET, '-r', '0', '-t', String(timeoutS)], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const out = `${res.stdout}${res.stderr}`;
  const answer: Answer = /code=2 \(Access-Accept\)/.test(out) ? 'accept' : /code=3 \(Access-Reject\)/.test(out) ? 'reject' : 'none';
  if (answer === 'accept') expect(res.status, out).toBe(0);
  if (answer === 'reject') expect(res.status, out).not.toBe(0);
  return { answer, out };
}

/**
 * Authenticates until the answer is `want`, as a NAS would retry (eapol_test waits 1 s at most for
 * an exchange); resolves with the ms since `since`.
 */
function until(r: Radius, name: string, want: Exclude<Answer, 'none'>, since: number, timeoutMs = 30_000): Promise<number> {
  return pollUntil(`${want} for ${name} (${r.mode})`, () => eap(r, name, 1).answer === want, { timeoutMs, intervalMs: 20, since });
}

/**
 * Why FreeRADIUS refuses an IDevID sent with the manufacturing CA: its chain reaches the root, and
 * the export trusts only the device CAs (19 when the root is sent as well).
 */
const IDEVID_REFUSED = /error 20 : unable to get local issuer certificate|error 19 : self-signed certificate in certificate chain/;

/** FreeRADIUS's own log line for the last rejection of `cn` (its reason). */
function lastRejectReason(r: Radius, cn: string): string {
  const lines = readFileSync(r.log, 'utf8').split('\n').filter((l) => l.includes('Login incorrect') && l.includes(`[${cn}]`));
  return lines.at(-1) ?? '';
}

/** A fleetca status command; resolves with the moments it started and returned. */
function statusCommand(args: string[]): { started: number; t0: number } {
  const started = Date.now();
  cli(args);
  return { started, t0: Date.now() };
}

/**
 * What the CRL-mode watcher did for one change, from its log: ms after the command returned (a
 * negative figure: before it returned) at which it published the CRL, switched DIR and the restart
 * was done.
 */
function watcherSteps(r: Radius, started: number, t0: number): string {
  const log = path.join(r.root, 'watch.log');
  if (!existsSync(log)) return '';
  const steps: string[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const m = /^(\S+Z) (published CRL|switched to|reload command succeeded)/.exec(line);
    if (!m) continue;
    const at = Date.parse(m[1]!);
    if (at >= started) steps.push(`${m[2]!.replace('reload command succeeded', 'restarted').replace(' to', '')} ${at - t0} ms`);
  }
  const restarts = path.join(r.root, 'restarts.log');
  const last = existsSync(restarts) ? readFileSync(restarts, 'utf8').trim().split('\n').at(-1) : undefined;
  return steps.length ? ` (watcher: ${steps.join(', ')}; restart script: ${last ?? '-'})` : '';
}

// ------------------------------------------------------------------ tests

describe('the tools', () => {
  it('freeradius, eapol_test, pki and openssl are installed (the file fails without them)', () => {
    expect(missingTools()).toEqual([]);
  });
});

describe('fleetca export bundle', () => {
  it('prints the device CA, then the root, and never the manufacturing CA; --out writes the same', () => {
    const r = cli(['export', 'bundle']);
    const blocks = pemBlocks(r.stdout);
    expect(blocks.map((b) => new X509Certificate(b).subject)).toEqual([
      expect.stringContaining('CN=fleetca Device CA'),
      expect.stringContaining('CN=fleetca Root CA'),
    ]);
    const mfg = new X509Certificate(readFileSync(f('data/certs/manufacturing-ca.pem'))).fingerprint256;
    expect(blocks.map((b) => new X509Certificate(b).fingerprint256)).not.toContain(mfg);
    expect(r.stderr).toContain('trust bundle: device-ca, root');
    cli(['export', 'bundle', '--out', f('bundle.pem')]);
    expect(readFileSync(f('bundle.pem'), 'utf8')).toBe(r.stdout);
  });

  it('--out naming a folder is refused (exit 2)', () => {
    mkdirSync(f('a-folder'), { recursive: true });
    const r = fleetca(['export', 'bundle', '--out', f('a-folder')], env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('is a folder');
  });
});

describe('fleetca export freeradius (files)', () => {
  it('writes ca_file.pem (the bundle), device_cas.pem and ca_path/ (device CAs only, PEM CRLs, openssl rehash names), tls-config.conf; DIR is a link to a versioned folder', () => {
    const out = f('files/radius');
    const r = cli(['export', 'freeradius', '--out', out]);
    expect(r.stderr).toContain('radius.v1');
    expect(lstatSync(out).isSymbolicLink()).toBe(true);
    expect(readlinkSync(out)).toBe('radius.v1');
    const bundle = cli(['export', 'bundle']).stdout;
    expect(readFileSync(path.join(out, 'ca_file.pem'), 'utf8')).toBe(bundle);
    // what FreeRADIUS trusts: the bundle without the root
    expect(readFileSync(path.join(out, 'device_cas.pem'), 'utf8')).toBe(pemBlocks(bundle)[0]);

    const caPath = path.join(out, 'ca_path');
    const names = readdirSync(caPath).sort();
    expect(names.filter((n) => !/^[0-9a-f]{8}\.r?\d$/.test(n))).toEqual(['device-ca.crl.pem', 'device-ca.pem']);
    // every link is named by what `openssl x509 -hash` / `openssl crl -hash` prints for its target
    const links = names.filter((n) => /^[0-9a-f]{8}\.r?\d$/.test(n));
    expect(links).toHaveLength(2);
    for (const l of links) {
      const target = readlinkSync(path.join(caPath, l));
      const isCrl = l.includes('.r');
      expect(target.endsWith(isCrl ? '.crl.pem' : '.pem')).toBe(true);
      const hash = opensslOk([isCrl ? 'crl' : 'x509', '-hash', '-noout', '-in', path.join(caPath, target)]).trim();
      expect(l, target).toBe(`${hash}.${isCrl ? 'r0' : '0'}`);
    }
    // CRLs in PEM (FreeRADIUS and openssl rehash skip DER ones)
    expect(readFileSync(path.join(caPath, 'device-ca.crl.pem'), 'utf8')).toMatch(/^-----BEGIN X509 CRL-----\n/);
    // OpenSSL finds the CA and the CRL through the hash names; the device CA is the trust anchor, as in
    // FreeRADIUS (X509_V_FLAG_PARTIAL_CHAIN)
    const v = spawnSync('openssl', ['verify', '-partial_chain', '-CApath', caPath, '-crl_check', creds.get('crl-revoke')!.cert], { encoding: 'utf8' });
    expect(v.status, v.stdout + v.stderr).toBe(0);

    const conf = readFileSync(path.join(out, 'tls-config.conf'), 'utf8');
    expect(conf).toContain(`ca_file = "${path.resolve(out)}/device_cas.pem"`);
    expect(conf).toContain(`ca_path = "${path.resolve(out)}/ca_path"`);
    expect(conf).toMatch(/^check_crl = yes$/m);
    expect(conf).toMatch(/^check_all_crl = no$/m);
    expect(conf).toContain('error 8'); // the check_all_crl trap, explained
    expect(conf).toMatch(/^check_cert_issuer = "\/O=fleetca\/CN=fleetca Device CA"$/m);
    expect(conf).toContain(`url = "http://127.0.0.1:${httpPort}/ocsp/device-ca"`);
    expect(conf).toMatch(/ocsp \{\n\tenable = no$/m);
    const manifest = JSON.parse(readFileSync(path.join(out, 'fleetca-export.json'), 'utf8')) as { cas: Array<{ name: string }>; bundle: Array<{ name: string }> };
    expect(manifest.cas.map((c) => c.name)).toEqual(['device-ca']);
    expect(manifest.bundle.map((c) => c.name)).toEqual(['device-ca', 'root']);
  });

  it('publishes a fresh CRL itself when the newest one predates a status change, and not again when nothing changed', () => {
    // no server-side publication comes (crl.debounce is 10 minutes in this config)
    const c = newKeyAndCsr('fresh', '/CN=fresh-cam');
    writeFileSync(f('fresh.crt'), cli(['issue', '--profile', 'camera', '--device', 'fresh-cam', '--csr', c.csr]).stdout);
    const serial = serialOf(f('fresh.crt'));
    cli(['revoke', serial, '--reason', 'keyCompromise']);
    // a CRL's thisUpdate has whole seconds: one published in the second of the revocation cannot
    // show it came after it, and the next export publishes again (on the safe side). Let that
    // second pass, so the second export below has nothing to publish.
    const nextSecond = Math.ceil((Date.now() + 1) / 1000) * 1000 + 50;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, nextSecond - Date.now()));
    const out = f('fresh/radius');
    const r = cli(['export', 'freeradius', '--out', out]);
    expect(r.stderr).toMatch(/published CRL #\d+ of device-ca/);
    expect(crlEntryOf(crlText(readFileSync(path.join(out, 'ca_path/device-ca.crl.pem')), 'PEM'), serial)).not.toBeNull();
    const again = cli(['export', 'freeradius', '--out', out]);
    expect(again.stderr).not.toContain('published CRL');
    expect(again.stderr).toContain('is up to date (radius.v1)');
  });

  it('bad --out: a file, a folder with content, a place that cannot be written → exit 2, nothing written', () => {
    mkdirSync(f('bad'), { recursive: true });
    writeFileSync(f('bad/a-file'), 'keep me\n');
    mkdirSync(f('bad/full'), { recursive: true });
    writeFileSync(f('bad/full/x'), 'x\n');
    const cases: Array<[string, RegExp]> = [
      [f('bad/a-file'), /is a file/],
      [f('bad/a-file/sub'), /a parent of it is a file/],
      [f('bad/full'), /folder with content/],
      ['/sys/fleetca-nac-test/radius', /cannot create|not writable|not permitted|read-only/i],
    ];
    for (const [out, message] of cases) {
      const r = fleetca(['export', 'freeradius', '--out', out], env);
      expect(r.code, `${out}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(readFileSync(f('bad/a-file'), 'utf8')).toBe('keep me\n');
    expect(readdirSync(f('bad')).sort()).toEqual(['a-file', 'full']);
    expect(readdirSync(f('bad/full'))).toEqual(['x']);
    const interval = fleetca(['export', 'freeradius', '--out', f('bad/new'), '--interval', 'soon'], env);
    expect(interval.code).toBe(2);
    expect(existsSync(f('bad/new'))).toBe(false);
  });

  it('a reload command that fails: exit 1 and said so, the export itself complete', () => {
    const out = f('reload-once/radius');
    const r = fleetca(['export', 'freeradius', '--out', out, '--reload-cmd', 'echo no radius here >&2; exit 7'], env);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('reload command failed (exit 7): no radius here');
    expect(readFileSync(path.join(out, 'tls-config.conf'), 'utf8')).toContain('check_all_crl = no');
  });
});

describe('fleetca export freeradius --watch: a failing reload command', () => {
  it('is reported and retried; DIR always points at a complete version and the older one stays until a reload succeeds', async () => {
    const root = f('watch-fail');
    mkdirSync(root, { recursive: true });
    const out = path.join(root, 'radius');
    const flag = path.join(root, 'broken');
    const reloads = path.join(root, 'reloads');
    writeFileSync(flag, '');
    const script = path.join(root, 'reload.sh');
    writeFileSync(script, `#!/bin/sh\nif [ -f '${flag}' ]; then echo "radius config test failed" >&2; exit 3; fi\nreadlink '${out}' >> '${reloads}'\n`, { mode: 0o755 });
    cli(['export', 'freeradius', '--out', out]); // v1, as FreeRADIUS would have loaded it
    const log = path.join(root, 'watch.log');
    const watcher = await startWatcher(['--out', out, '--reload-cmd', script, '--interval', '1s'], log);

    const c = newKeyAndCsr('watch-dev', '/CN=watch-dev');
    writeFileSync(f('watch-dev.crt'), cli(['issue', '--profile', 'camera', '--device', 'watch-dev', '--csr', c.csr]).stdout);
    cli(['hold', serialOf(f('watch-dev.crt'))]);
    const text = await waitForLog(log, /reload command failed \(exit 3\): radius config test failed; retrying in/, 'a failed reload reported', 30_000, 2);
    expect(text).toContain('switched to radius.v2');
    expect(text).toContain('radius.v1, the version last reloaded, is kept');
    expect(readlinkSync(out)).toBe('radius.v2');
    expect(existsSync(path.join(root, 'radius.v1', 'ca_path', 'device-ca.crl.pem'))).toBe(true);
    expect(crlEntryOf(crlText(readFileSync(path.join(out, 'ca_path/device-ca.crl.pem')), 'PEM'), serialOf(f('watch-dev.crt')))).not.toBeNull();
    expect(existsSync(reloads)).toBe(false);

    rmSync(flag);
    await waitForLog(log, /reload command succeeded for radius\.v2/, 'the retried reload', 60_000);
    expect(readFileSync(reloads, 'utf8')).toBe('radius.v2\n');
    await pollUntil('radius.v1 pruned', () => !existsSync(path.join(root, 'radius.v1')), { timeoutMs: 5_000 });
    expect(readdirSync(root).filter((n) => n.startsWith('radius')).sort()).toEqual(['radius', 'radius.v2']);
    await stopChild(watcher);
    expect(readFileSync(log, 'utf8')).toContain('stopped watching');
  });
});

for (const mode of MODES) {
  describe(`FreeRADIUS + eapol_test, revocation checked by ${mode === 'crl' ? 'CRL (the watched export, restart as reload command)' : "OCSP (fleetca's responder, no restart)"}`, () => {
    let r: Radius;
    let firstPid: string;
    let watcher: ChildProcess | undefined;

    beforeAll(async () => {
      r = await makeRadius(mode);
      cli(['export', 'freeradius', '--out', r.out, '--revocation', mode]);
      runRestart(r);
      firstPid = readFileSync(r.pidFile, 'utf8').trim();
      if (mode === 'crl') watcher = await startWatcher(['--out', r.out, '--reload-cmd', r.restart, '--interval', '5s'], path.join(r.root, 'watch.log'));
    }, 120_000);

    afterAll(async () => {
      if (watcher) await stopChild(watcher);
      if (r) stopPidFile(r.pidFile);
    });

    it('a device enrolled over EST gets Access-Accept', () => {
      for (const name of [`${mode}-revoke`, `${mode}-hold`]) {
        const a = eap(r, name);
        expect(a.answer, a.out).toBe('accept');
      }
    });

    it('revoke → Access-Reject', async () => {
      const { started, t0 } = statusCommand(['revoke', creds.get(`${mode}-revoke`)!.serial, '--reason', 'keyCompromise']);
      const ms = await until(r, `${mode}-revoke`, 'reject', t0);
      timings.push(`${mode}: revoke → Access-Reject ${ms} ms${watcherSteps(r, started, t0)}`);
      expect(lastRejectReason(r, `${mode}-revoke`)).toMatch(mode === 'crl' ? /error 23 : certificate revoked/ : /ocsp: Cert status: revoked/);
    });

    it('hold → Access-Reject', async () => {
      const { started, t0 } = statusCommand(['hold', creds.get(`${mode}-hold`)!.serial]);
      const ms = await until(r, `${mode}-hold`, 'reject', t0);
      timings.push(`${mode}: hold → Access-Reject ${ms} ms${watcherSteps(r, started, t0)}`);
      // a hold is revoked/certificateHold on the CRL and in OCSP (RFC 6960 §2.2)
      expect(lastRejectReason(r, `${mode}-hold`)).toMatch(mode === 'crl' ? /error 23 : certificate revoked/ : /ocsp: Cert status: revoked/);
    });

    it('release → Access-Accept again', async () => {
      const { started, t0 } = statusCommand(['release', creds.get(`${mode}-hold`)!.serial]);
      const ms = await until(r, `${mode}-hold`, 'accept', t0);
      timings.push(`${mode}: release → Access-Accept ${ms} ms${watcherSteps(r, started, t0)}`);
      // the revoked one stays out
      expect(eap(r, `${mode}-revoke`).answer).toBe('reject');
    });

    it('a certificate from a foreign CA → Access-Reject', () => {
      const a = eap(r, 'foreign');
      expect(a.answer, a.out).toBe('reject');
      // the device sent the foreign CA along: OpenSSL ends at a self-signed CA it does not trust
      expect(lastRejectReason(r, 'foreign-cam')).toMatch(/self-signed certificate in certificate chain|unable to get (local )?issuer certificate/);
    });

    it('an IDevID from the manufacturing CA → Access-Reject (its chain ends at the root, which FreeRADIUS does not trust)', () => {
      const a = eap(r, 'idevid');
      expect(a.answer, a.out).toBe('reject');
      expect(lastRejectReason(r, 'idevid-0001')).toMatch(IDEVID_REFUSED);
    });

    it('an expired certificate → Access-Reject', async () => {
      const notAfter = new Date(new X509Certificate(readFileSync(creds.get('expired')!.cert)).validTo).getTime();
      if (Date.now() <= notAfter + 1000) await new Promise((res) => setTimeout(res, notAfter + 1000 - Date.now()));
      const a = eap(r, 'expired');
      expect(a.answer, a.out).toBe('reject');
      expect(lastRejectReason(r, 'exp-cam')).toMatch(/certificate has expired/);
    });

    it(mode === 'crl' ? 'FreeRADIUS was restarted by the watcher for each change' : 'FreeRADIUS was never restarted', () => {
      const pid = readFileSync(r.pidFile, 'utf8').trim();
      if (mode === 'crl') {
        expect(pid).not.toBe(firstPid);
        expect(readlinkSync(r.out)).not.toBe('fleetca.v1');
      } else {
        expect(pid).toBe(firstPid);
        expect(readlinkSync(r.out)).toBe('fleetca.v1');
      }
    });
  });
}

/**
 * Last in the file: it rolls the device CA over, and every case above expects a single device CA.
 * After `fleetca ca rollover --intermediate` the export trusts "fleetca Device CA" and "fleetca Device
 * CA G2", two subjects that one check_cert_issuer value cannot both name. An IDevID sent with the
 * manufacturing CA (a chain that verifies against the bundle, root included) must still be
 * rejected, in both modes, and the cameras of both device CAs accepted.
 */
describe('a device CA rollover (two device CA names): both device CAs accepted, an IDevID still rejected', () => {
  const radius = new Map<Mode, Radius>();
  const cnOf = (name: string) => name.split('\n').find((l) => l.startsWith('CN='));
  const subjects = (file: string) => pemBlocks(readFileSync(file, 'utf8')).map((b) => cnOf(new X509Certificate(b).subject));
  const issuerCn = (name: string) => cnOf(new X509Certificate(readFileSync(creds.get(name)!.cert)).issuer);

  /** A camera certificate; its file holds the chain the device sends (`--chain`: its issuing CA), plus `extra`. */
  function issueCamera(name: string, extra = ''): void {
    const c = newKeyAndCsr(name, `/CN=${name}`);
    writeFileSync(f(`${name}.crt`), cli(['issue', '--profile', 'camera', '--device', name, '--csr', c.csr, '--chain']).stdout + extra);
    creds.set(name, { cert: f(`${name}.crt`), key: c.key, serial: serialOf(f(`${name}.crt`)), cn: name });
  }

  beforeAll(async () => {
    issueCamera('rollover-old');
    for (const mode of MODES) {
      const r = await makeRadius(mode, `rollover-${mode}`);
      cli(['export', 'freeradius', '--out', r.out, '--revocation', mode]);
      runRestart(r);
      radius.set(mode, r);
    }
  }, 120_000);

  afterAll(() => {
    for (const r of radius.values()) stopPidFile(r.pidFile);
  });

  it('before the rollover: a camera of the device CA → Access-Accept, the IDevID → Access-Reject', () => {
    expect(issuerCn('rollover-old')).toBe('CN=fleetca Device CA');
    for (const r of radius.values()) {
      const a = eap(r, 'rollover-old');
      expect(a.answer, a.out).toBe('accept');
      expect(eap(r, 'idevid').answer).toBe('reject');
    }
  });

  it('fleetca ca rollover --intermediate (the root key is online in this data dir), then a camera from the new CA', () => {
    expect(existsSync(f('data/keys/root.key.pem'))).toBe(true);
    const view = JSON.parse(cli(['ca', 'rollover', '--intermediate', '--json']).stdout) as { issuer: string; previous: string };
    expect(view).toMatchObject({ issuer: 'device-ca-2', previous: 'device-ca' });
    // this one sends the whole chain, root included
    issueCamera('rollover-new', readFileSync(f('root.pem'), 'utf8'));
    expect(issuerCn('rollover-new')).toBe('CN=fleetca Device CA G2');
    for (const r of radius.values()) writeEapConf(r.root, 'rollover-new');
  });

  for (const mode of MODES) {
    it(`${mode}: re-exported (both device CAs trusted, no check_cert_issuer), FreeRADIUS restarted`, () => {
      const r = radius.get(mode)!;
      cli(['export', 'freeradius', '--out', r.out, '--revocation', mode]);
      runRestart(r);
      expect(readlinkSync(r.out)).toBe('fleetca.v2');
      expect(subjects(path.join(r.out, 'ca_file.pem'))).toEqual(['CN=fleetca Device CA G2', 'CN=fleetca Device CA', 'CN=fleetca Root CA']);
      expect(subjects(path.join(r.out, 'device_cas.pem'))).toEqual(['CN=fleetca Device CA G2', 'CN=fleetca Device CA']);
      expect(readdirSync(path.join(r.out, 'ca_path')).filter((n) => !/^[0-9a-f]{8}\.r?\d$/.test(n)).sort()).toEqual(['device-ca-2.crl.pem', 'device-ca-2.pem', 'device-ca.crl.pem', 'device-ca.pem']);
      const conf = readFileSync(path.join(r.out, 'tls-config.conf'), 'utf8');
      expect(conf).toContain(`ca_file = "${r.out}/device_cas.pem"`);
      expect(conf).not.toMatch(/^check_cert_issuer/m);
    });

    it(`${mode}: a camera of the old device CA → Access-Accept`, () => {
      const a = eap(radius.get(mode)!, 'rollover-old');
      expect(a.answer, a.out).toBe('accept');
    });

    it(`${mode}: a camera of the new device CA (sending the root too) → Access-Accept`, async () => {
      // OCSP: the running server loads the new CA on the rollover's NOTIFY; allow it a moment
      await until(radius.get(mode)!, 'rollover-new', 'accept', Date.now(), 15_000);
    });

    it(`${mode}: an IDevID sent with the manufacturing CA → Access-Reject`, () => {
      const r = radius.get(mode)!;
      // against the bundle (root trusted) its chain verifies: only what FreeRADIUS is given keeps it out
      const [leaf, mfgCa] = pemBlocks(readFileSync(creds.get('idevid')!.cert, 'utf8'));
      writeFileSync(f('idevid-leaf.pem'), leaf!);
      writeFileSync(f('idevid-sent.pem'), mfgCa!);
      const v = spawnSync('openssl', ['verify', '-CAfile', path.join(r.out, 'ca_file.pem'), '-untrusted', f('idevid-sent.pem'), f('idevid-leaf.pem')], { encoding: 'utf8' });
      expect(v.status, v.stdout + v.stderr).toBe(0);
      const a = eap(r, 'idevid');
      expect(a.answer, a.out).toBe('reject');
      expect(lastRejectReason(r, 'idevid-0001')).toMatch(IDEVID_REFUSED);
    });
  }

  it('revocation still works for the new CA: revoke its camera → Access-Reject (CRL: re-export and restart; OCSP: at once)', async () => {
    cli(['revoke', creds.get('rollover-new')!.serial, '--reason', 'keyCompromise']);
    const crl = radius.get('crl')!;
    expect(cli(['export', 'freeradius', '--out', crl.out, '--revocation', 'crl']).stderr).toMatch(/published CRL #\d+ of device-ca-2/);
    runRestart(crl);
    expect(eap(crl, 'rollover-new').answer).toBe('reject');
    expect(lastRejectReason(crl, 'rollover-new')).toMatch(/error 23 : certificate revoked/);
    const ocsp = radius.get('ocsp')!;
    await until(ocsp, 'rollover-new', 'reject', Date.now(), 15_000);
    expect(lastRejectReason(ocsp, 'rollover-new')).toMatch(/ocsp: Cert status: revoked/);
    // the old CA's camera is unaffected
    for (const r of radius.values()) expect(eap(r, 'rollover-old').answer).toBe('accept');
  });
});
