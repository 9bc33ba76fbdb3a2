/**
 * Runs a factory batch: a manifest in, a certificate (and/or a one-time enrollment secret) per
 * device out, through the CA core only. Idempotent and resumable:
 *
 *  - A batch has an id (given, or derived from the manifest's SHA-256) and a database record; a
 *    rerun under that id must bring the same manifest and options. One process runs a batch at a
 *    time (a lock that dies with the process).
 *  - What the batch issued is known from the issuance intents, which carry the batch id and are
 *    durable before anything is signed. On start, the batch's intents still pending (their process
 *    is gone: we hold the lock) are marked failed, so none can complete behind our back.
 *  - A device's row is appended to the journal (output.ts) only once its files are complete. On a
 *    rerun, a device with a batch certificate is never issued another, except in one case:
 *  - Server-generated keys are written (encrypted) BEFORE the certificate is requested. A
 *    certificate whose key file is gone (e.g. lost in a power failure) or does not match can never
 *    be used: it is revoked (reason superseded), recorded on the batch, and the device gets a new
 *    key and certificate. A key file that does not decrypt stops the run (a wrong password must
 *    not revoke anything).
 *  - Secrets are drawn, written to the journal, and only then stored (their MAC) with the chunk's
 *    outcomes in one transaction; a secret found in the journal but not in the database is stored
 *    on the rerun, never drawn anew.
 */
import crypto, { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { CaError, badRequest, conflict, toCaError, unavailable } from '../core/errors.js';
import type { Clock, RandomBytes } from '../core/clock.js';
import { formatSerial } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import { pemEncode } from '../pki/pem.js';
import { parseSpki } from '../pki/spki.js';
import { buildPfx, encryptPrivateKeyInfo } from '../pki/pkcs12.js';
import { generateKeyPairAsync, spkiOf } from '../signing/keys.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { CertificateAuthority, IssuedCertificate } from '../ca/issuance.js';
import type { AuditEntry, CertificateReader, DeviceState, IssuerRole, RevocationReason } from '../ca/ports.js';
import { serverKeyType } from '../enrollment/enroll.js';
import { prepareEnrollmentSecrets } from '../enrollment/secret-issuer.js';
import { ManifestError, countManifestRows, parseManifest, type ManifestContext, type ManifestFormat, type ManifestReject, type ManifestRow } from './manifest.js';
import { BatchOutput, type OutputRow } from './output.js';
import type { BatchCertificate, BatchDevice, BatchFormat, BatchKeygen, BatchOptions, BatchOutcome, BatchRecord, BatchStore } from './ports.js';

/** Batch ids: letters, digits, `.`, `_`, `-`; at most 64. */
export const BATCH_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Rows registered (devices upserted) per transaction. */
const CHUNK = 256;

export interface BatchDeps {
  ca: CertificateAuthority;
  store: BatchStore & Pick<CertificateReader, 'getCertificate'>;
  config: FleetcaConfig;
  clock: Clock;
  /** HMAC key of enrollment secrets (only asked for with --secrets). */
  secretKey: () => Buffer;
  /** Where PKCS#12 MAC keys are derived (worker threads); absent: on the event loop. */
  crypto?: Pick<CryptoEngine, 'pkcs12MacKey'>;
  random?: RandomBytes;
}

/** Progress of a run: the CLI draws a bar on a terminal, plain lines otherwise. */
export interface BatchProgress {
  /** `total`: the manifest's data rows. */
  start(total: number, batchId: string): void;
  /** `done` rows of `total` handled so far (issued now, found complete, or rejected). */
  update(done: number, counts: RunCounts): void;
  stop(): void;
}

export interface RunCounts {
  /** Certificates issued by this run. */
  issued: number;
  /** Devices finished by this run without a new certificate (files rewritten, a secret only). */
  completed: number;
  /** Devices complete before this run (nothing to do). */
  reused: number;
  rejected: number;
  replaced: number;
  secrets: number;
}

export interface BatchRunRequest {
  /** Opens the manifest afresh (it is read twice: checked and hashed, then run). */
  manifest: () => AsyncIterable<Buffer | string>;
  manifestName: string;
  manifestFormat?: ManifestFormat;
  /** Reads `csr` / `public_key` file paths of the manifest (absent: refused). */
  readFile?: (file: string) => Buffer;
  batchId?: string;
  outDir: string;
  profile?: string;
  keygen: BatchKeygen;
  format: BatchFormat;
  /** The key password (server keygen); never stored or written. */
  password?: string;
  kdfIterations: number;
  secrets: boolean;
  secretTtlMs?: number;
  strict: boolean;
  concurrency: number;
  actor: string;
  progress?: BatchProgress;
}

export interface BatchRunResult {
  batch: BatchRecord;
  created: boolean;
  counts: RunCounts;
  rejects: ManifestReject[];
  /** Certificates revoked (superseded) by this run because their server-generated key was lost. */
  replaced: string[];
  outDir: string;
}

/** Stops the whole run (not the row's fault: a wrong password, the database gone); a rerun continues. */
class StopRun extends Error {
  constructor(readonly error: CaError) {
    super(error.message);
  }
}

/** A simple counting semaphore. */
class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function manifestContext(deps: BatchDeps, req: BatchRunRequest): ManifestContext {
  return {
    profiles: deps.config.profiles,
    issuerRoles: new Map(Object.entries(deps.config.settings.issuers).map(([n, i]) => [n, i.role as IssuerRole])),
    ...(req.profile !== undefined ? { defaultProfile: req.profile } : {}),
    keygen: req.keygen,
    secrets: req.secrets,
    ...(req.readFile ? { readFile: req.readFile } : {}),
  };
}

/** A source that hashes what flows through it. */
async function* hashing(source: AsyncIterable<Buffer | string>, hash: crypto.Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    hash.update(b);
    yield b;
  }
}

/**
 * Pass 1: the manifest's hash and row count. With --strict every row is validated, and the first
 * bad one stops everything; otherwise rows are only counted (validated once, in pass 2).
 */
async function survey(deps: BatchDeps, req: BatchRunRequest): Promise<{ sha256: string; rows: number }> {
  const hash = crypto.createHash('sha256');
  let rows = 0;
  try {
    if (!req.strict) {
      rows = await countManifestRows(hashing(req.manifest(), hash), req.manifestFormat);
    } else {
      for await (const e of parseManifest(hashing(req.manifest(), hash), manifestContext(deps, req), req.manifestFormat)) {
        rows++;
        if (!e.ok) throw badRequest(`manifest line ${e.reject.line}${e.reject.deviceId ? ` (${e.reject.deviceId})` : ''}: ${e.reject.reason} (--strict: nothing was issued)`);
      }
    }
  } catch (e) {
    if (e instanceof ManifestError) throw badRequest(e.message);
    throw e;
  }
  return { sha256: hash.digest('hex'), rows };
}

function sameOptions(a: BatchOptions, b: BatchOptions): string[] {
  const diff: string[] = [];
  for (const k of ['profile', 'keygen', 'format', 'secrets', 'secretTtlMs', 'kdfIterations', 'outDir'] as const) {
    if ((a[k] ?? null) !== (b[k] ?? null)) diff.push(`${k}: ${String(a[k])} (batch) vs ${String(b[k])} (now)`);
  }
  return diff;
}

/** Runs (or resumes) a batch. */
export async function runBatch(deps: BatchDeps, req: BatchRunRequest): Promise<BatchRunResult> {
  if (req.keygen === 'server' && !req.password) throw badRequest('--keygen server needs --key-password-file (the keys are written encrypted)');
  if (req.keygen === 'device' && req.format === 'p12') throw badRequest('--format p12 needs --keygen server (a PKCS#12 bundle holds the private key)');
  if (req.profile !== undefined && deps.config.profiles.get(req.profile)?.kind !== 'device') throw badRequest(`unknown device profile "${req.profile}"`);
  if (!(req.concurrency >= 1 && req.concurrency <= 1024)) throw badRequest('concurrency must be between 1 and 1024');

  const surveyed = await survey(deps, req);
  const batchId = req.batchId ?? `m-${surveyed.sha256.slice(0, 16)}`;
  if (!BATCH_ID_RE.test(batchId)) throw badRequest(`"${batchId}" is not a valid batch id (letters, digits, . _ -; at most 64)`);
  const options: BatchOptions = {
    profile: req.profile ?? null,
    keygen: req.keygen,
    format: req.format,
    secrets: req.secrets,
    secretTtlMs: req.secretTtlMs ?? null,
    kdfIterations: req.kdfIterations,
    outDir: path.resolve(req.outDir),
  };
  const now = deps.clock.now();
  const { batch, created } = await deps.store.openBatch(
    { id: batchId, manifestSha256: surveyed.sha256, manifestName: req.manifestName, options, createdAt: now, createdBy: req.actor },
    { at: now, actor: req.actor, action: 'batch.created', target: `batch:${batchId}`, details: { manifest: req.manifestName, sha256: surveyed.sha256, rows: surveyed.rows, ...options } },
  );
  if (!created) {
    if (batch.manifestSha256 !== surveyed.sha256) throw conflict(`batch ${batchId} was run with another manifest (SHA-256 ${batch.manifestSha256}); use another --batch-id`);
    const diff = sameOptions(batch.options, options);
    if (diff.length) throw conflict(`batch ${batchId} was run with other options (${diff.join('; ')})`);
    if (batch.revokedAt) throw conflict(`batch ${batchId} was revoked on ${batch.revokedAt.toISOString()}; it cannot be run again`);
  }
  const out = new BatchOutput(options.outDir, req.secrets);
  try {
    await out.prepare(created);
  } catch (e) {
    throw conflict((e as Error).message);
  }
  const result = await deps.store.withBatchLock(batchId, () => new Run(deps, req, batchId, out, surveyed.rows).execute());
  if (result === null) throw conflict(`batch ${batchId} is being run by another process`);
  return { ...result, batch: (await deps.store.getBatch(batchId))!, created };
}

type RowResult =
  | { kind: 'done'; row: OutputRow; outcome: BatchOutcome; issued: boolean; unchanged: boolean; replaced: string[]; audit: AuditEntry[] }
  | { kind: 'rejected'; reason: string };

/** One execution of a batch, holding its lock. */
class Run {
  private readonly sem: Semaphore;
  private readonly certs = new Map<string, BatchCertificate>();
  private completed = new Map<string, OutputRow>();
  /** Each finished device's line of manifest.csv, with its input line (for the final order). */
  private readonly rows: Array<{ line: number; text: string }> = [];
  private readonly rejects: ManifestReject[] = [];
  private readonly counts: RunCounts = { issued: 0, completed: 0, reused: 0, rejected: 0, replaced: 0, secrets: 0 };
  private readonly replacedSerials: string[] = [];
  private done = 0;
  private stopError: CaError | null = null;
  private secretKey: Buffer | null = null;
  private readonly issuerRoles: ReadonlyMap<string, IssuerRole>;
  private chainPem = new Map<string, string>();

  constructor(
    private readonly deps: BatchDeps,
    private readonly req: BatchRunRequest,
    private readonly batchId: string,
    private readonly out: BatchOutput,
    private readonly total: number,
  ) {
    this.sem = new Semaphore(req.concurrency);
    this.issuerRoles = manifestContext(deps, req).issuerRoles;
  }

  private get random(): RandomBytes {
    return this.deps.random ?? crypto.randomBytes;
  }

  async execute(): Promise<Omit<BatchRunResult, 'batch' | 'created'>> {
    const { deps, batchId } = this;
    // intents of this batch still pending belong to a process that is gone (we hold the lock)
    const pending = await deps.store.batchPendingIntents(batchId);
    if (pending.length) await deps.ca.abandonIntents(pending, this.req.actor, `batch ${batchId} resumed; the run that recorded this intent ended`);
    // the live certificate the batch gave each device (newest valid or held)
    for (const c of await deps.store.batchCertificates(batchId)) {
      if (c.status !== 'revoked') this.certs.set(c.deviceId, c);
    }
    this.completed = await this.out.readCompleted();
    this.out.openJournal();

    this.req.progress?.start(this.total, batchId);
    const inFlight: Array<Promise<void>> = [];
    let chunk: ManifestRow[] = [];
    let rowsTotal = 0;
    const hash = crypto.createHash('sha256');
    try {
      for await (const e of parseManifest(hashing(this.req.manifest(), hash), manifestContext(deps, this.req), this.req.manifestFormat)) {
        rowsTotal++;
        if (!e.ok) {
          this.rejects.push(e.reject);
          this.done++;
          continue;
        }
        chunk.push(e.row);
        if (chunk.length >= CHUNK) {
          inFlight.push(this.chunk(chunk));
          chunk = [];
          // two chunks in flight: one registering while the other issues
          if (inFlight.length >= 2) await inFlight.shift();
          if (this.stopError) break;
        }
      }
      if (chunk.length && !this.stopError) inFlight.push(this.chunk(chunk));
      await Promise.all(inFlight);
    } finally {
      this.req.progress?.stop();
      this.out.closeJournal();
    }
    if (this.stopError) throw this.stopError;
    const batch = await deps.store.getBatch(batchId);
    if (batch && hash.digest('hex') !== batch.manifestSha256) throw conflict('the manifest changed while the batch ran; nothing more was issued');

    const now = deps.clock.now();
    this.rejects.sort((a, b) => a.line - b.line);
    await deps.store.recordBatchRejects(batchId, this.rejects, rowsTotal, now);
    this.rows.sort((a, b) => a.line - b.line);
    const devices = this.rows.length;
    await this.out.finish(this.rows.map((r) => r.text), this.rejects);
    await deps.store.completeBatch(batchId, now, {
      at: now,
      actor: this.req.actor,
      action: 'batch.completed',
      target: `batch:${batchId}`,
      details: { ...this.counts, devices, rejects: this.rejects.length },
    });
    return { counts: this.counts, rejects: this.rejects, replaced: this.replacedSerials, outDir: this.out.root };
  }

  /** Registers a chunk's devices, then handles its rows (at most `concurrency` at once overall). */
  private async chunk(rows: ManifestRow[]): Promise<void> {
    const { deps, batchId } = this;
    const at = deps.clock.now();
    let states: Map<string, DeviceState>;
    let known: Map<string, BatchDevice>;
    try {
      states = await deps.store.registerBatchDevices(
        batchId,
        rows.map((r) => ({
          deviceId: r.deviceId,
          line: r.line,
          profile: r.profile.name,
          // an IDevID profile is not an enrollment profile: the record keeps (or lacks) its own
          deviceProfile: this.issuerRoles.get(r.profile.issuer) === 'manufacturing' ? null : r.profile.name,
          serialNumber: r.serialNumber,
          macs: r.macs,
          model: r.model,
          firmware: r.firmware,
        })),
        at,
      );
      known = await deps.store.batchDevices(batchId, rows.map((r) => r.deviceId));
    } catch (e) {
      this.stop(toCaError(e));
      return;
    }
    const outcomes: BatchOutcome[] = [];
    const audit: AuditEntry[] = [];
    await Promise.all(
      rows.map(async (row) => {
        await this.sem.acquire();
        let r: RowResult;
        try {
          if (this.stopError) return;
          const state = states.get(row.deviceId);
          r = state === 'active' ? await this.device(row, known.get(row.deviceId) ?? null) : { kind: 'rejected', reason: `device ${row.deviceId} is ${state ?? 'missing'}` };
        } catch (e) {
          const err = e instanceof StopRun ? e.error : toCaError(e);
          if (e instanceof StopRun || err.kind === 'unavailable' || err.kind === 'internal' || err.kind === 'conflict') {
            // not the row's fault: stop; the rerun continues from here
            this.stop(err);
            return;
          }
          r = { kind: 'rejected', reason: err.message };
        } finally {
          this.sem.release();
        }
        this.account(row, r, outcomes, audit);
      }),
    );
    try {
      // the chunk's rows reach the journal before its secrets reach the database
      this.out.flushJournal();
      await deps.store.recordBatchOutcomes(batchId, outcomes, audit, deps.clock.now());
    } catch (e) {
      this.stop(toCaError(e));
    }
  }

  /** Counts a device's result and queues its outcome for the chunk's write. */
  private account(row: ManifestRow, r: RowResult, outcomes: BatchOutcome[], audit: AuditEntry[]): void {
    if (r.kind === 'rejected') {
      this.rejects.push({ line: row.line, deviceId: row.deviceId, reason: r.reason });
      outcomes.push({ deviceId: row.deviceId, state: 'rejected', reason: r.reason });
      this.counts.rejected++;
      if (this.req.strict) this.stop(badRequest(`manifest line ${row.line} (${row.deviceId}): ${r.reason} (--strict: the batch stopped here; rerun without --strict to continue)`));
    } else {
      outcomes.push(r.outcome);
      audit.push(...r.audit);
      this.rows.push({ line: row.line, text: this.out.line(r.row) });
      if (r.issued) this.counts.issued++;
      else if (r.unchanged) this.counts.reused++;
      else this.counts.completed++;
      if (r.outcome.secret) this.counts.secrets++;
      this.counts.replaced += r.replaced.length;
      this.replacedSerials.push(...r.replaced);
    }
    this.done++;
    this.req.progress?.update(this.done, this.counts);
  }

  private stop(e: CaError): void {
    this.stopError ??= e;
  }

  // ---------------------------------------------------------------- one device

  /** Handles one device: finds what an earlier run did, completes it, or issues. */
  private async device(row: ManifestRow, known: BatchDevice | null): Promise<RowResult> {
    const prior = this.completed.get(row.deviceId);
    const cert = this.certs.get(row.deviceId) ?? null;
    const replaced: string[] = [];
    const audit: AuditEntry[] = [];
    let issued = false;
    let certRow: { serial: string; der: Buffer; notAfter: Date; issuerName: string } | null = null;

    if (row.key.kind !== 'none') {
      if (cert) {
        const stored = await this.deps.store.getCertificate(cert.serial);
        if (!stored) throw unavailable(`certificate ${cert.serial} of batch ${this.batchId} is not readable`);
        certRow = { serial: stored.serial, der: stored.der, notAfter: stored.notAfter, issuerName: stored.issuerName };
        const journaled = prior !== undefined && prior.serial === formatSerial(cert.serial);
        const ok = await this.completeExisting(row, certRow, journaled);
        if (!ok) {
          // the certificate's server-generated key is lost: it can never be used; replace it
          await this.deps.ca.revoke(cert.serial, 'superseded' as RevocationReason, this.req.actor).catch((e: unknown) => {
            if (!(e instanceof CaError && e.kind === 'conflict')) throw e;
          });
          replaced.push(cert.serial);
          audit.push({
            at: this.deps.clock.now(),
            actor: this.req.actor,
            action: 'batch.key_lost',
            target: cert.serial,
            details: { batch: this.batchId, device: row.deviceId, why: 'the server-generated key never reached the output folder; certificate revoked (superseded) and replaced' },
          });
          certRow = null;
        }
      }
      if (!certRow) {
        certRow = await this.issue(row);
        issued = true;
      }
    }

    // the secret: the journal's (stored or not), else a fresh one
    let secret = '';
    let secretRecord: BatchOutcome['secret'] = null;
    if (this.req.secrets) {
      const journaledSecret = prior?.secret ?? '';
      const storedAlready = known?.secretId !== null && known?.secretId !== undefined;
      if (journaledSecret && storedAlready) {
        secret = journaledSecret;
      } else {
        const [p] = prepareEnrollmentSecrets(
          { config: this.deps.config, clock: this.deps.clock, secretKey: (this.secretKey ??= this.deps.secretKey()) },
          [{ deviceId: row.deviceId, profile: row.profile.name, ...(this.req.secretTtlMs !== undefined ? { ttlMs: this.req.secretTtlMs } : {}), ...(journaledSecret ? { secret: journaledSecret } : {}) }],
          this.req.actor,
        );
        secret = p!.secret;
        secretRecord = p!.record;
        audit.push({ ...p!.audit, details: { ...p!.audit.details, batch: this.batchId } });
      }
    }

    const outRow: OutputRow = {
      deviceId: row.deviceId,
      serial: certRow ? formatSerial(certRow.serial) : '',
      fingerprint: certRow ? crypto.createHash('sha256').update(certRow.der).digest('hex') : '',
      notAfter: certRow ? certRow.notAfter.toISOString() : '',
      secret,
    };
    const unchanged = prior !== undefined && !issued && !secretRecord && sameRow(prior, outRow);
    if (!unchanged) this.out.journal(outRow);
    // p12: the pre-issuance key file goes only once the device's row is safe in the journal
    if (this.req.keygen === 'server' && this.req.format === 'p12') await this.out.remove(this.out.rel(row.deviceId, 'key.pem'));
    return {
      kind: 'done',
      row: outRow,
      issued,
      unchanged,
      replaced,
      audit,
      outcome: { deviceId: row.deviceId, state: 'done', serial: certRow?.serial ?? null, replaced, secret: secretRecord },
    };
  }

  /**
   * Completes the files of a device that has a batch certificate. Returns false when its
   * server-generated key is lost (missing, or not the certificate's key).
   */
  private async completeExisting(row: ManifestRow, cert: { serial: string; der: Buffer; issuerName: string }, journaled: boolean): Promise<boolean> {
    const rel = (f: string) => this.out.rel(row.deviceId, f);
    const server = this.req.keygen === 'server';
    const p12 = server && this.req.format === 'p12';
    if (journaled) {
      // complete before: trust the files that are there; rewrite the public ones that are not
      const keyOk = !server || (await this.out.exists(rel(p12 ? 'bundle.p12' : 'key.pem')));
      if (keyOk) {
        if (!(await this.out.exists(rel('cert.pem')))) await this.out.write(rel('cert.pem'), pemEncode('CERTIFICATE', cert.der), 0o644);
        if (!(await this.out.exists(rel('chain.pem')))) await this.out.write(rel('chain.pem'), this.chain(cert.issuerName), 0o644);
        return true;
      }
      if (!p12) return false;
      // a bundle lost but its key file still there: fall through and rebuild it
    }
    let encrypted: Buffer | null = null;
    if (server) {
      const pem = await this.out.read(rel('key.pem'));
      if (!pem) return false;
      let key: crypto.KeyObject;
      try {
        key = crypto.createPrivateKey({ key: pem, format: 'pem', passphrase: this.req.password! });
      } catch (e) {
        throw new StopRun(badRequest(`cannot decrypt ${this.out.abs(rel('key.pem'))}: wrong --key-password-file? (${(e as Error).message}); nothing was revoked`));
      }
      if (!spkiOf(key).equals(new X509Certificate(cert.der).publicKey.export({ type: 'spki', format: 'der' }))) return false;
      encrypted = Buffer.from(pemBody(pem.toString('latin1')), 'base64');
    }
    await this.writeFiles(row, cert, encrypted);
    return true;
  }

  /** Issues the device's certificate through the CA core (and makes its key first, with --keygen server). */
  private async issue(row: ManifestRow): Promise<{ serial: string; der: Buffer; notAfter: Date; issuerName: string }> {
    const { ca } = this.deps;
    const base = { profile: row.profile.name, deviceId: row.deviceId, actor: this.req.actor, via: 'batch', batch: this.batchId };
    let cert: IssuedCertificate;
    let encrypted: Buffer | null = null;
    switch (row.key.kind) {
      case 'csr':
        cert = await ca.issueFromCsr({ ...base, csrDer: row.key.der, createDevice: false, approved: true });
        break;
      case 'spki':
        // proof of possession is the factory's: recorded as pop_method 'factory' on the certificate
        cert = await ca.issueForPublicKey({ ...base, subject: row.key.decision.subject, sans: [], spkiDer: row.key.der, key: row.key.key, popMethod: 'factory' });
        break;
      case 'server': {
        const pair = await generateKeyPairAsync(serverKeyType(row.profile));
        const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
        try {
          encrypted = await encryptPrivateKeyInfo(pkcs8, this.req.password!, { salt: this.random(16), iv: this.random(16), iterations: this.req.kdfIterations });
        } finally {
          pkcs8.fill(0);
        }
        // the key is on disk (encrypted) before the certificate exists: a crash cannot lose it
        await this.out.makeDeviceFolder(row.deviceId);
        const keyRel = this.out.rel(row.deviceId, 'key.pem');
        // atomically: a resumed run reads it back, and must never see half of it
        await this.out.write(keyRel, pemEncode('ENCRYPTED PRIVATE KEY', encrypted), 0o600, true);
        const spkiDer = spkiOf(pair.publicKey);
        try {
          cert = await ca.issueForPublicKey({ ...base, subject: row.key.subject, sans: [], spkiDer, key: parseSpki(spkiDer).key, popMethod: 'server' });
        } catch (e) {
          await this.out.removeDevice(row.deviceId);
          throw e;
        }
        break;
      }
      case 'none':
        throw new Error('no key material to issue for');
    }
    const c = { serial: cert.serial, der: cert.der, notAfter: cert.notAfter, issuerName: cert.issuerName };
    await this.writeFiles(row, c, encrypted);
    return c;
  }

  /** cert.pem, chain.pem, and with --format p12 bundle.p12 (from the encrypted key). */
  private async writeFiles(row: ManifestRow, cert: { der: Buffer; issuerName: string }, encrypted: Buffer | null): Promise<void> {
    const rel = (f: string) => this.out.rel(row.deviceId, f);
    // with a server key the folder exists already: its key.pem was written (or read back) first
    if (encrypted === null) await this.out.makeDeviceFolder(row.deviceId);
    await this.out.write(rel('cert.pem'), pemEncode('CERTIFICATE', cert.der), 0o644);
    await this.out.write(rel('chain.pem'), this.chain(cert.issuerName), 0o644);
    if (encrypted && this.req.format === 'p12') {
      const macSalt = this.random(16);
      const macKey = this.deps.crypto ? await this.deps.crypto.pkcs12MacKey(this.req.password!, macSalt, this.req.kdfIterations) : undefined;
      const pfx = buildPfx({
        encryptedKey: encrypted,
        certs: [cert.der, ...this.deps.ca.chainOf(cert.issuerName)],
        friendlyName: row.deviceId,
        password: this.req.password!,
        macSalt,
        macIterations: this.req.kdfIterations,
        ...(macKey ? { macKey } : {}),
      });
      macKey?.fill(0);
      await this.out.write(rel('bundle.p12'), pfx, 0o600);
    }
  }

  /** The issuing CA and the root, PEM (the same for every device of an issuer). */
  private chain(issuerName: string): string {
    let pem = this.chainPem.get(issuerName);
    if (pem === undefined) {
      pem = this.deps.ca.chainOf(issuerName).map((d) => pemEncode('CERTIFICATE', d)).join('');
      this.chainPem.set(issuerName, pem);
    }
    return pem;
  }
}

function sameRow(a: OutputRow, b: OutputRow): boolean {
  return a.serial === b.serial && a.fingerprint === b.fingerprint && a.notAfter === b.notAfter && a.secret === b.secret;
}

/** The base64 body of a single-block PEM. */
function pemBody(pem: string): string {
  return pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, '');
}
