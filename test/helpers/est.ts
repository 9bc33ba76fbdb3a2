/**
 * Real EST clients for integration tests: strongSwan `pki`, curl, and a hand-written HTTP/1.1
 * request over a Node TLS socket (to read the connection's channel binding before sending).
 * See /work/shared/interop/CLIENTS.md sections 1 and 3a for the command lines and their quirks.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import type { CliResult } from './cli.js';

/**
 * Several `fleetca` commands, one after the other, in ONE child process: the CLI's own composition
 * root (defaultHost + runCli, as `main` uses them) with stdout/stderr captured per command. One
 * tsx start-up (about 1.5 s of CPU) instead of one per command, for setup steps such as a batch of
 * enrollment secrets.
 */
export async function fleetcaBatch(commands: string[][], env: Record<string, string | undefined>): Promise<CliResult[]> {
  const url = (p: string) => JSON.stringify(pathToFileURL(path.resolve(p)).href);
  const script = `
    import { defaultHost } from ${url('src/main/cli.ts')};
    import { runCli } from ${url('src/cli/program.ts')};
    const results = [];
    for (const argv of JSON.parse(process.argv[1])) {
      let stdout = '';
      let stderr = '';
      const host = { ...defaultHost(), out: (s) => void (stdout += s), err: (s) => void (stderr += s) };
      results.push({ code: await runCli(host, argv), stdout, stderr });
    }
    process.stdout.write(JSON.stringify(results));
  `;
  const r = await runAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(commands)], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
  if (r.code !== 0) throw new Error(`fleetca batch exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as CliResult[];
}

/** Any command, asynchronously; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runAsync(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; onStderr?: (chunk: string) => void } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(d.toString());
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    p.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** strongSwan's TPM plugin complains on every run; those lines say nothing about the test. */
export function withoutTpmNoise(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/tpm/i.test(l))
    .join('\n');
}

/** strongSwan `pki`, synchronously, in `cwd`; stderr without the TPM noise. */
export function pki(args: string[], cwd: string): CliResult {
  const r = spawnSync('pki', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: withoutTpmNoise(r.stderr) };
}

/**
 * A private key made by `pki --gen` and a PEM CSR made from it by `pki --req`, as `<dir>/<name>.key`
 * and `<dir>/<name>.csr` (ECDSA P-256, RSA-2048 — the only kind `pki --scep` takes — or Ed25519).
 */
export function pkiKeyAndCsr(dir: string, name: string, type: 'ecdsa' | 'rsa' | 'ed25519', cn: string): { key: string; csr: string } {
  const size = type === 'ecdsa' ? ['--size', '256'] : type === 'rsa' ? ['--size', '2048'] : [];
  const gen = pki(['--gen', '--type', type, ...size, '--outform', 'pem'], dir);
  if (gen.code !== 0) throw new Error(`pki --gen failed: ${gen.stderr}`);
  const key = path.join(dir, `${name}.key`);
  writeFileSync(key, gen.stdout);
  const req = pki(['--req', '--type', 'priv', '--in', key, '--dn', `CN=${cn}`, '--outform', 'pem'], dir);
  if (req.code !== 0) throw new Error(`pki --req failed: ${req.stderr}`);
  const csr = path.join(dir, `${name}.csr`);
  writeFileSync(csr, req.stdout);
  return { key, csr };
}

export interface CurlResult {
  status: number;
  /** The reply headers as received (status line included). */
  headers: string;
  body: Buffer;
  stderr: string;
}

/** curl -sS with the reply headers and body captured separately. */
export function curl(args: string[]): CurlResult {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fleetca-curl-'));
  try {
    const h = path.join(tmp, 'headers');
    const b = path.join(tmp, 'body');
    const r = spawnSync('curl', ['-sS', '-D', h, '-o', b, '-w', '%{http_code}', ...args], { encoding: 'utf8', timeout: 60_000 });
    const read = (file: string) => {
      try {
        return readFileSync(file);
      } catch {
        return Buffer.alloc(0);
      }
    };
    return { status: Number(r.stdout.trim()), headers: read(h).toString('latin1'), body: read(b), stderr: r.stderr };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The value of one reply header (case-insensitive name), or undefined. */
export function header(headers: string, name: string): string | undefined {
  const re = new RegExp(`^${name}:[ \\t]*(.*?)\\r?$`, 'im');
  return re.exec(headers)?.[1];
}

/** The PEM blocks of a text, in order. */
export function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----\n?/g)?.map((b) => (b.endsWith('\n') ? b : `${b}\n`)) ?? [];
}

/** A TCP port that was free a moment ago (for a listener whose URL must be known before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A verified TLS connection to the server, once the handshake is done. */
export function tlsConnect(port: number, ca: string, opts: Pick<tls.ConnectionOptions, 'minVersion' | 'maxVersion'>): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, ...opts }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export interface RawResponse {
  status: number;
  headers: string;
  body: Buffer;
}

/** One HTTP/1.1 request written by hand on an open socket (Connection: close); the reply read to the end. */
export function httpOverSocket(socket: tls.TLSSocket, head: string[], body: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('error', reject);
    socket.once('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split < 0) return reject(new Error(`no HTTP reply: ${all.toString('latin1')}`));
      const headers = all.subarray(0, split).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? NaN);
      resolve({ status, headers, body: all.subarray(split + 4) });
      socket.destroy();
    });
    const text = [...head, `Content-Length: ${body.length}`, 'Connection: close', '', ''].join('\r\n');
    socket.write(Buffer.concat([Buffer.from(text, 'latin1'), body]));
  });
}
