/**
 * Storage port of factory batches (migration 0013). `store/pg-batches.ts` implements it; the
 * batch runner (runner.ts) and the batch commands reach the database only through it and the
 * CA core.
 */
import type { AuditEntry, CertificateStatus, DeviceState } from '../ca/ports.js';
import type { NewSecret } from '../enrollment/ports.js';

export type BatchKeygen = 'device' | 'server';
export type BatchFormat = 'pem' | 'p12';

/** What a batch was created with; a rerun under the same id must ask for the same. */
export interface BatchOptions {
  /** `--profile` (rows may name their own). */
  profile: string | null;
  keygen: BatchKeygen;
  format: BatchFormat;
  secrets: boolean;
  /** Lifetime of the enrollment secrets, ms (null: the configured default). */
  secretTtlMs: number | null;
  /** PBKDF2 iterations of the key encryption (and of the PKCS#12 MAC). */
  kdfIterations: number;
  /** Absolute path of the output folder. */
  outDir: string;
}

export type BatchState = 'running' | 'complete';

export interface BatchRecord {
  id: string;
  /** Lowercase hex SHA-256 of the manifest bytes. */
  manifestSha256: string;
  manifestName: string;
  options: BatchOptions;
  state: BatchState;
  /** Data rows of the manifest (valid and rejected). */
  rowsTotal: number;
  rejected: number;
  /** How many times the batch was run (1 + resumptions). */
  runs: number;
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
  completedAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
  revocationReason: string | null;
  /** Per state of its devices: pending, done, rejected (from batch_devices). */
  devices: { pending: number; done: number; rejected: number; secrets: number; replaced: number };
}

export interface NewBatch {
  id: string;
  manifestSha256: string;
  manifestName: string;
  options: BatchOptions;
  createdAt: Date;
  createdBy: string;
}

/** A manifest row as the device record and the batch keep it. */
export interface BatchDeviceInput {
  deviceId: string;
  line: number;
  /** The certificate profile of the row. */
  profile: string;
  /**
   * The device record's default profile to set; null keeps the record's (an IDevID profile is
   * never a device's enrollment profile: EST picks the profile of an IDevID-authenticated device
   * from its record).
   */
  deviceProfile: string | null;
  /** null: the row does not say; the record keeps its value. */
  serialNumber: string | null;
  macs: string[] | null;
  model: string | null;
  firmware: string | null;
}

export type BatchDeviceState = 'pending' | 'done' | 'rejected';

export interface BatchDevice {
  batchId: string;
  deviceId: string;
  line: number;
  profile: string;
  state: BatchDeviceState;
  serial: string | null;
  replaced: string[];
  secretId: string | null;
  reason: string | null;
  updatedAt: Date;
}

/** What one device of the batch came to, recorded per chunk. */
export interface BatchOutcome {
  deviceId: string;
  state: Exclude<BatchDeviceState, 'pending'>;
  serial?: string | null;
  /** Certificates of the batch revoked because their key was lost (added to `replaced`). */
  replaced?: string[];
  reason?: string | null;
  /** A one-time enrollment secret to store with the outcome (only its MAC). */
  secret?: NewSecret | null;
}

export interface BatchReject {
  line: number;
  deviceId: string | null;
  reason: string;
}

/** A certificate issued by a batch, found through its issuance intent. */
export interface BatchCertificate {
  deviceId: string;
  serial: string;
  status: CertificateStatus;
  createdAt: Date;
}

export interface BatchStore {
  /** Creates the batch; an existing id returns the stored batch unchanged (created false) with its run count raised. */
  openBatch(b: NewBatch, audit: AuditEntry): Promise<{ batch: BatchRecord; created: boolean }>;
  getBatch(id: string): Promise<BatchRecord | null>;
  /** Newest first. */
  listBatches(filter?: { limit?: number }): Promise<BatchRecord[]>;
  /**
   * Runs `fn` holding the batch's run lock (across processes; released when `fn` ends or the
   * process dies). Resolves null without running `fn` when another process holds it.
   */
  withBatchLock<T>(id: string, fn: () => Promise<T>): Promise<T | null>;
  /**
   * In one transaction: creates the devices that do not exist (active, with the row's fields),
   * updates the fields a row gives on those that do, and records every row as a device of the
   * batch (pending, unless it is there already). Returns each device's state.
   */
  registerBatchDevices(batchId: string, rows: BatchDeviceInput[], at: Date): Promise<Map<string, DeviceState>>;
  /** The batch's devices by id (state, serial, secret). */
  batchDevices(batchId: string, deviceIds: readonly string[]): Promise<Map<string, BatchDevice>>;
  /** Every certificate the batch's intents produced, oldest first. */
  batchCertificates(batchId: string): Promise<BatchCertificate[]>;
  /** Serials of the batch's intents still pending. */
  batchPendingIntents(batchId: string): Promise<string[]>;
  /**
   * In one transaction: stores the outcomes' secrets (MACs) with the audit entries, and the outcomes
   * on batch_devices. A secret given for a device that has one from this batch replaces it (the old
   * one expires now): the runner sends one only when none is stored or its plaintext was lost.
   */
  recordBatchOutcomes(batchId: string, outcomes: BatchOutcome[], audit: AuditEntry[], at: Date): Promise<void>;
  /** Replaces the batch's rejects with these (a rerun recomputes them) and its row counts. */
  recordBatchRejects(batchId: string, rejects: BatchReject[], rowsTotal: number, at: Date): Promise<void>;
  listBatchRejects(batchId: string): Promise<BatchReject[]>;
  /** In input order; keyset pagination by line. */
  listBatchDevices(batchId: string, filter?: { afterLine?: number; limit?: number }): Promise<BatchDevice[]>;
  /** Marks the batch complete (with its audit entry). */
  completeBatch(batchId: string, at: Date, audit: AuditEntry): Promise<BatchRecord>;
  /** Records the recall (with its audit entry) once; a second call leaves the first recall as it is. The certificates are revoked by the caller through the core. */
  markBatchRevoked(batchId: string, reason: string, at: Date, actor: string, audit: AuditEntry): Promise<BatchRecord>;
}
