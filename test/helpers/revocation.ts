/**
 * Revocation-status clients for integration tests: `openssl ocsp` with its output parsed
 * (CLIENTS.md 3b), the GET path of an OCSP request (RFC 5019 §5), `openssl crl -text` of a fetched
 * CRL (CLIENTS.md 3c), polling with a measured delay, and a TCP relay to PostgreSQL that a test
 * can cut to take the database away from one server.
 */
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import type { CliResult } from './cli.js';
import { openssl } from './cli.js';
import { runAsync } from './est.js';

/** What `openssl ocsp` said about the one certificate it asked for. */
export interface OcspOutcome {
  code: number;
  /** stdout and stderr together (openssl prints the verdict on stderr, the statuses on stdout). */
  out: string;
  status: 'good' | 'revoked' | 'unknown' | null;
  /** The `Reason:` line; null when there is none. */
  reason: string | null;
  revocationTime: Date | null;
  thisUpdate: Date | null;
  nextUpdate: Date | null;
  /** `Response verify OK` was printed. */
  verified: boolean;
  /** `WARNING: no nonce in response` was printed. */
  nonceWarning: boolean;
  /** `Responder Error: <status> (<n>)`, e.g. "malformedrequest (1)"; null when the response was successful. */
  responderError: string | null;
}

const dateOf = (m: RegExpExecArray | null) => (m ? new Date(`${m[1]!.trim()}`) : null);

/** Parses the output of one `openssl ocsp` run about a single certificate. */
export function parseOcsp(r: CliResult): OcspOutcome {
  const out = `${r.stdout}\n${r.stderr}`;
  const status = /^\S.*: (good|revoked|unknown)$/m.exec(r.stdout)?.[1] as OcspOutcome['status'] | undefined;
  return {
    code: r.code,
    out,
    status: status ?? null,
    reason: /^\tReason: (\S+)$/m.exec(r.stdout)?.[1] ?? null,
    revocationTime: dateOf(/^\tRevocation Time: (.+)$/m.exec(r.stdout)),
    thisUpdate: dateOf(/^\tThis Update: (.+)$/m.exec(r.stdout)),
    nextUpdate: dateOf(/^\tNext Update: (.+)$/m.exec(r.stdout)),
    verified: /^Response verify OK$/m.test(out),
    nonceWarning: out.includes('WARNING: no nonce in response'),
    responderError: /^Responder Error: (.+)$/m.exec(out)?.[1]?.trim() ?? null,
  };
}

/** `openssl ocsp <args>`, synchronously (the server must run in another process). */
export function opensslOcsp(args: string[]): OcspOutcome {
  return parseOcsp(openssl(['ocsp', ...args]));
}

/** `openssl ocsp <args>` without blocking this process (for a server or relay running in it). */
export async function opensslOcspAsync(args: string[]): Promise<OcspOutcome> {
  return parseOcsp(await runAsync('openssl', ['ocsp', ...args], { timeoutMs: 30_000 }));
}

/**
 * The path of an OCSP GET request (RFC 5019 §5): `<prefix>/<base64 of the DER>`, the base64
 * URL-encoded as CLIENTS.md 3b does it (`+`, `/`, `=` escaped), or as is.
 */
export function ocspGetPath(prefix: string, der: Buffer, urlEncode: boolean): string {
  const b64 = der.toString('base64');
  return `${prefix}/${urlEncode ? b64.replace(/\+/g, '%2B').replace(/\//g, '%2F').replace(/=/g, '%3D') : b64}`;
}

/**
 * Calls `check` every `intervalMs` until it returns true; resolves with the milliseconds elapsed
 * since `since` (default: now). Rejects with `what` after `timeoutMs`.
 */
export async function pollUntil(what: string, check: () => boolean | Promise<boolean>, opts: { timeoutMs: number; intervalMs?: number; since?: number }): Promise<number> {
  const start = opts.since ?? Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > opts.timeoutMs) throw new Error(`${what}: not seen within ${opts.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** `openssl crl -text -noout` of a CRL (DER or PEM); throws when openssl cannot parse it. */
export function crlText(crl: Buffer, inform: 'DER' | 'PEM' = 'DER'): string {
  const r = openssl(['crl', '-inform', inform, '-noout', '-text'], crl);
  if (r.code !== 0) throw new Error(`openssl crl failed: ${r.stderr}`);
  return r.stdout;
}

/** The CRL Number `openssl crl -text` printed. */
export function crlNumberOf(text: string): bigint {
  const m = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text);
  if (!m) throw new Error(`no CRL Number in:\n${text}`);
  return BigInt(m[1]!);
}

/**
 * The entry of one serial (upper-case hex, as openssl prints it) in `openssl crl -text`: its
 * lines up to the next entry or the signature; null when the CRL does not list it.
 */
export function crlEntryOf(text: string, serialHex: string): string | null {
  const marker = `Serial Number: ${serialHex.toUpperCase()}\n`;
  const from = text.indexOf(marker);
  if (from < 0) return null;
  const after = text.slice(from + marker.length);
  const end = after.search(/\n {4}(Serial Number|Signature Algorithm):/);
  return text.slice(from, from + marker.length + (end < 0 ? after.length : end + 1));
}

/** The parts of a PostgreSQL connection string, including the embedded cluster's socket form. */
function splitConnectionString(cs: string): { prefix: string; database: string; query: string; user: string; host: string; port: string } {
  const m = /^(postgres(?:ql)?:\/\/(?:([^@/]*)@)?([^/:]*)(?::(\d+))?\/)([^?]*)(.*)$/.exec(cs);
  if (!m) throw new Error(`not a connection string: ${cs}`);
  return { prefix: m[1]!, user: decodeURIComponent(m[2] ?? ''), host: m[3]!, port: m[4] ?? '', database: decodeURIComponent(m[5]!), query: m[6]! };
}

/** The database a connection string names. */
export function databaseOf(cs: string): string {
  return splitConnectionString(cs).database;
}

/** The same connection string naming another database (e.g. `postgres`, for ALTER DATABASE). */
export function withDatabase(cs: string, database: string): string {
  const p = splitConnectionString(cs);
  return `${p.prefix}${encodeURIComponent(database)}${p.query}`;
}

/** A TCP listener relaying every connection to a PostgreSQL server, that a test can cut and restore. */
export interface DbRelay {
  /** The connection string that goes through the relay. */
  connectionString: string;
  /** Stops listening and resets every relayed connection: the database is unreachable (ECONNREFUSED). */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A relay in front of the database of `connectionString` (TCP, or the Unix socket of the embedded
 * cluster: `postgresql://user@/db?host=/socket/dir&port=N`). The relay runs in this process: while
 * it is in use, run clients asynchronously (runAsync), never with spawnSync.
 */
export async function startDbRelay(connectionString: string): Promise<DbRelay> {
  const cs = splitConnectionString(connectionString);
  const params = new URLSearchParams(cs.query.replace(/^\?/, ''));
  const socketDir = params.get('host');
  const port = Number(params.get('port') ?? (cs.port || 5432));
  const target: net.NetConnectOpts = socketDir?.startsWith('/') ? { path: path.join(socketDir, `.s.PGSQL.${port}`) } : { host: cs.host || '127.0.0.1', port };
  const open = new Set<net.Socket>();
  let server: net.Server | null = null;
  let listenPort = 0;
  const listen = async () => {
    const s = net.createServer((client) => {
      const upstream = net.connect(target);
      open.add(client);
      client.on('close', () => open.delete(client));
      for (const sock of [client, upstream]) sock.on('error', () => undefined);
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    s.listen(listenPort, '127.0.0.1');
    await once(s, 'listening');
    listenPort = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const cut = async () => {
    const s = server;
    server = null;
    // the client side is TCP: reset it (the upstream side, maybe a Unix socket, closes with it)
    for (const sock of open) sock.resetAndDestroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return {
    connectionString: `postgresql://${encodeURIComponent(cs.user || 'postgres')}@127.0.0.1:${listenPort}/${encodeURIComponent(cs.database)}`,
    cut,
    restore: async () => {
      if (!server) await listen();
    },
    close: cut,
  };
}
