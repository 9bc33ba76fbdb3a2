/**
 * Factory manifests: one device per row, as CSV with a header or as JSON Lines, parsed as a stream
 * (never the whole file in memory) and validated row by row. Every bad row becomes a reject with
 * its input line number and a one-line reason; a manifest that cannot be read at all (an unclosed
 * quote, an unknown column, no `device_id` column) is a ManifestError with the line.
 *
 * Pure: no I/O of its own. Reading a `csr` / `public_key` given as a file path goes through the
 * `readFile` the caller injects (absent: paths are refused, as over the admin API).
 *
 * Checks here are the ones that need no database: the CSR or SPKI decoded strictly, the subject
 * matched against the row, and the profile's whole policy (key type and size, subject, SANs) run
 * with the row's MACs — the same `evaluatePolicy` the CA core runs again at issuance. What needs
 * the database (device state, a key certified for another device) is the core's at issuance.
 */
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse';
import { CaError } from '../core/errors.js';
import { DEVICE_ID_RE } from '../core/ids.js';
import type { Profile } from '../config/schema.js';
import { decodeCsr, type DecodedCsr, type KeyInfo } from '../pki/csr.js';
import { DerError } from '../pki/der.js';
import { OID_DN } from '../pki/oids.js';
import { pemDecodeAll } from '../pki/pem.js';
import { parseSpki } from '../pki/spki.js';
import type { RdnAttribute } from '../pki/names.js';
import { evaluatePolicy, normalizeMac, type PolicyDecision } from '../ca/policy.js';
import type { IssuerRole } from '../ca/ports.js';

/** The columns a manifest may have (CSV header names, JSON keys). Only `device_id` is required. */
export const MANIFEST_COLUMNS = ['device_id', 'serial_number', 'mac', 'model', 'firmware', 'profile', 'csr', 'public_key'] as const;
export type ManifestColumn = (typeof MANIFEST_COLUMNS)[number];

export type ManifestFormat = 'csv' | 'jsonl';

/** Who makes the device's key: the device (a CSR or SPKI in the row) or fleetca (`--keygen server`). */
export type KeygenMode = 'device' | 'server';

/** The key material of a row. */
export type RowKey =
  | { kind: 'csr'; der: Buffer; csr: DecodedCsr }
  /** A bare SubjectPublicKeyInfo: proof of possession is the factory's (popMethod 'factory'). */
  | { kind: 'spki'; der: Buffer; key: KeyInfo; decision: PolicyDecision }
  /** fleetca generates the key (`--keygen server`); subject decided here, key type from the profile. */
  | { kind: 'server'; subject: RdnAttribute[] }
  /** No certificate: an enrollment secret only (`--secrets`, the device enrolls on first boot). */
  | { kind: 'none' };

/** A valid row. */
export interface ManifestRow {
  /** Input line where the row starts (1 = the CSV header or the first JSON line). */
  line: number;
  deviceId: string;
  serialNumber: string | null;
  /** Normalised (lowercase, colon-separated); null when the row does not say (the record keeps its own). */
  macs: string[] | null;
  model: string | null;
  firmware: string | null;
  profile: Profile;
  key: RowKey;
}

/** A bad row: its line, its device id when it had a readable one, and why. */
export interface ManifestReject {
  line: number;
  deviceId: string | null;
  reason: string;
}

export type ManifestEntry = { ok: true; row: ManifestRow } | { ok: false; reject: ManifestReject };

/** The manifest as a whole cannot be read (the line where it broke, when known). */
export class ManifestError extends Error {
  constructor(
    message: string,
    readonly line: number | null = null,
  ) {
    super(line !== null ? `manifest line ${line}: ${message}` : `manifest: ${message}`);
    this.name = 'ManifestError';
  }
}

export interface ManifestContext {
  /** Every configured profile by name (only `kind: device` ones may be used). */
  profiles: ReadonlyMap<string, Profile>;
  /** Issuer name → role: a profile issued by a `manufacturing` CA makes IDevIDs (serial_number required). */
  issuerRoles: ReadonlyMap<string, IssuerRole>;
  /** `--profile`: for rows without a `profile` column value. */
  defaultProfile?: string;
  keygen: KeygenMode;
  /** `--secrets`: every row also gets a one-time enrollment secret. */
  secrets: boolean;
  /** Reads a `csr` / `public_key` given as a file path; absent = paths are refused. */
  readFile?: (file: string) => Buffer;
}

/** Longest CSV record / JSON line accepted (an inline RSA-4096 CSR is ~3 KB). */
export const MAX_RECORD_CHARS = 1 << 20;

const FIELD_MAX = 256;
const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]+$/;

type RawFields = Partial<Record<ManifestColumn, string | string[]>>;

/** An error thrown by the row checks, turned into a reject. */
class RowError extends Error {}

const rowError = (msg: string): never => {
  throw new RowError(msg);
};

// ------------------------------------------------------------------------------ key material

/** `value` is inline PEM, inline base64 DER, or (when `readFile` is given) a file path. */
function keyBytes(value: string, what: 'csr' | 'public_key', ctx: ManifestContext): { text: string | null; der: Buffer | null } {
  const v = value.trim();
  if (v.includes('-----BEGIN')) return { text: v, der: null };
  // a DER CSR or SPKI is ≥ 40 bytes; a path has characters base64 lacks ('.', '-', '_') or is short
  const compact = v.replace(/\s+/g, '');
  if (compact.length >= 60 && /^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return { text: null, der: Buffer.from(compact, 'base64') };
  if (!ctx.readFile) return rowError(`${what} is neither PEM nor base64 DER (file paths are not accepted here)`);
  let bytes: Buffer;
  try {
    bytes = ctx.readFile(v);
  } catch (e) {
    return rowError(`${what} file "${v}" cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN')) return { text, der: null };
  if (bytes[0] === 0x30) return { text: null, der: bytes };
  const b64 = text.replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return { text: null, der: Buffer.from(b64, 'base64') };
  return rowError(`${what} file "${v}" is neither PEM nor DER`);
}

function pemBlock(text: string, labels: readonly string[], what: string): Buffer {
  let blocks: Array<{ label: string; der: Buffer }>;
  try {
    blocks = pemDecodeAll(text);
  } catch (e) {
    return rowError(`${what}: ${(e as Error).message}`);
  }
  const found = blocks.filter((b) => labels.includes(b.label));
  if (found.length !== 1) return rowError(`${what}: expected one PEM ${labels[0]} block, found ${found.length}`);
  return found[0]!.der;
}

function decodeRowCsr(value: string, ctx: ManifestContext): { der: Buffer; csr: DecodedCsr } {
  const { text, der } = keyBytes(value, 'csr', ctx);
  const bytes = der ?? pemBlock(text!, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'csr');
  try {
    return { der: bytes, csr: decodeCsr(bytes) };
  } catch (e) {
    if (e instanceof CaError) return rowError(e.message);
    throw e;
  }
}

function decodeRowSpki(value: string, ctx: ManifestContext): { der: Buffer; key: KeyInfo } {
  const { text, der } = keyBytes(value, 'public_key', ctx);
  const bytes = der ?? pemBlock(text!, ['PUBLIC KEY'], 'public_key');
  try {
    return { der: bytes, key: parseSpki(bytes).key };
  } catch (e) {
    if (e instanceof DerError) return rowError(`public_key is not a DER SubjectPublicKeyInfo: ${e.message}`);
    throw e;
  }
}

// ------------------------------------------------------------------------------ one row

function text(fields: RawFields, col: ManifestColumn): string | null {
  const v = fields[col];
  if (v === undefined) return null;
  if (Array.isArray(v)) return rowError(`${col} must be a string`);
  const t = v.trim();
  return t === '' ? null : t;
}

function parseMacList(v: string | string[] | undefined): string[] | null {
  if (v === undefined) return null;
  const parts = (Array.isArray(v) ? v : v.split(';')).map((m) => (typeof m === 'string' ? m.trim() : '')).filter((m) => m !== '');
  if (parts.length === 0) return null;
  const out: string[] = [];
  for (const m of parts) {
    const n = normalizeMac(m);
    if (!n) return rowError(`malformed MAC address "${m}"`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** The subject fleetca builds for an SPKI or server-generated row: CN = device id, serialNumber when allowed. */
function builtSubject(profile: Profile, deviceId: string, serialNumber: string | null): RdnAttribute[] {
  const subject: RdnAttribute[] = [];
  if (serialNumber !== null && profile.subject.attributes.serialNumber !== undefined) {
    subject.push({ type: 'serialNumber', oid: OID_DN.serialNumber, value: serialNumber });
  }
  subject.push({ type: 'CN', oid: OID_DN.CN, value: deviceId });
  return subject;
}

/** A KeyInfo of the key type fleetca generates for the profile (its first), for the policy check; null for RSA. */
function standInKey(profile: Profile): KeyInfo | null {
  const t = profile.keys.types[0]!;
  if (t === 'ed25519') return { type: 'ed25519', bits: 256 };
  if (t === 'rsa') return null;
  return { type: 'ec', curve: t, bits: t === 'P-521' ? 521 : Number(t.slice(2)) };
}

function policy(profile: Profile, deviceId: string, macs: readonly string[], key: KeyInfo, subject: readonly RdnAttribute[], extensions: DecodedCsr['extensions']): PolicyDecision {
  try {
    return evaluatePolicy({ profile, deviceId, deviceMacs: macs, key, subject, extensions });
  } catch (e) {
    if (e instanceof CaError) return rowError(e.message);
    throw e;
  }
}

/**
 * Validates one record (fields by column) into a row; throws RowError with the reason. `seen`
 * holds the device ids of the rows before it (device id → line), for duplicates.
 */
function validateRecord(fields: RawFields, line: number, ctx: ManifestContext, seen: Map<string, number>): ManifestRow {
  const deviceId = text(fields, 'device_id');
  if (deviceId === null) return rowError('device_id is missing');
  if (!DEVICE_ID_RE.test(deviceId)) return rowError(`"${deviceId}" is not a valid device id (letters, digits, . _ : -; at most 128)`);
  const first = seen.get(deviceId);
  if (first !== undefined) return rowError(`duplicate device_id (first at line ${first})`);
  seen.set(deviceId, line);

  const profileName = text(fields, 'profile') ?? ctx.defaultProfile ?? null;
  if (profileName === null) return rowError('no profile: give a profile column or --profile');
  const profile = ctx.profiles.get(profileName);
  if (!profile) return rowError(`unknown profile "${profileName}"`);
  if (profile.kind !== 'device') return rowError(`profile ${profileName} is for fleetca's own service certificates`);

  const serialNumber = text(fields, 'serial_number');
  if (serialNumber !== null && (serialNumber.length > 64 || !PRINTABLE_RE.test(serialNumber))) {
    return rowError('serial_number must be 1-64 printable characters (letters, digits, space and \'()+,-./:=?)');
  }
  const idevid = ctx.issuerRoles.get(profile.issuer) === 'manufacturing';
  if (idevid && serialNumber === null) return rowError(`profile ${profile.name} makes IDevIDs (IEEE 802.1AR): serial_number is required`);
  const macs = parseMacList(fields.mac);
  const model = text(fields, 'model');
  const firmware = text(fields, 'firmware');
  for (const [name, v] of [['model', model], ['firmware', firmware]] as const) {
    if (v !== null && v.length > FIELD_MAX) rowError(`${name} is longer than ${FIELD_MAX} characters`);
  }
  if (ctx.secrets) {
    if (!profile.enrollment.secrets) return rowError(`profile ${profile.name} does not accept one-time enrollment secrets`);
    // RFC 7617: HTTP Basic cannot carry a ':' in the user-id
    if (deviceId.includes(':')) return rowError('device id contains ":", which HTTP Basic (the secret\'s username) cannot carry');
  }

  const csrValue = text(fields, 'csr');
  const spkiValue = text(fields, 'public_key');
  if (csrValue !== null && spkiValue !== null) return rowError('give csr or public_key, not both');
  const rowMacs = macs ?? [];
  let key: RowKey;
  if (ctx.keygen === 'server') {
    if (csrValue !== null || spkiValue !== null) return rowError('the row carries key material but --keygen server makes the keys');
    const subject = builtSubject(profile, deviceId, serialNumber);
    // the key will be the profile's first type, made by fleetca: only the subject can fail here
    // (an RSA key has no stand-in that passes the weak-key checks; the core checks it at issuance)
    const stand = standInKey(profile);
    key = { kind: 'server', subject: stand ? policy(profile, deviceId, rowMacs, stand, subject, { other: [] }).subject : subject };
  } else if (csrValue !== null) {
    const { der, csr } = decodeRowCsr(csrValue, ctx);
    const cn = csr.subject.find((a) => a.type === 'CN')?.value;
    if (profile.subject.commonName === 'deviceId' && cn !== deviceId) {
      return rowError(`CSR subject CN=${cn ?? '(none)'} does not match device_id ${deviceId}`);
    }
    const csrSerial = csr.subject.find((a) => a.type === 'serialNumber')?.value;
    if (csrSerial !== undefined && serialNumber !== null && csrSerial !== serialNumber) {
      return rowError(`CSR subject serialNumber=${csrSerial} does not match serial_number ${serialNumber}`);
    }
    if (idevid && csrSerial === undefined) return rowError(`CSR subject has no serialNumber; profile ${profile.name} makes IDevIDs`);
    policy(profile, deviceId, rowMacs, csr.key, csr.subject, csr.extensions);
    key = { kind: 'csr', der, csr };
  } else if (spkiValue !== null) {
    const { der, key: info } = decodeRowSpki(spkiValue, ctx);
    const decision = policy(profile, deviceId, rowMacs, info, builtSubject(profile, deviceId, serialNumber), { other: [] });
    key = { kind: 'spki', der, key: info, decision };
  } else if (ctx.secrets) {
    key = { kind: 'none' };
  } else {
    return rowError('no key material: give csr or public_key, or use --keygen server or --secrets');
  }
  return { line, deviceId, serialNumber, macs, model, firmware, profile, key };
}

/** The device id of a record, if it has a usable one (for the reject line). */
function deviceIdOf(fields: RawFields): string | null {
  const v = fields.device_id;
  if (typeof v !== 'string') return null;
  const t = v.trim();
  return t === '' ? null : t.slice(0, 128);
}

function entryOf(fields: RawFields, line: number, ctx: ManifestContext, seen: Map<string, number>): ManifestEntry {
  try {
    return { ok: true, row: validateRecord(fields, line, ctx, seen) };
  } catch (e) {
    if (e instanceof RowError) return { ok: false, reject: { line, deviceId: deviceIdOf(fields), reason: e.message } };
    throw e;
  }
}

// ------------------------------------------------------------------------------ the stream

function checkColumns(names: string[], line: number): ManifestColumn[] {
  const cols = names.map((n) => n.trim().toLowerCase());
  for (const c of cols) {
    if (!(MANIFEST_COLUMNS as readonly string[]).includes(c)) {
      throw new ManifestError(`unknown column "${c}" (known: ${MANIFEST_COLUMNS.join(', ')})`, line);
    }
  }
  const dup = cols.find((c, i) => cols.indexOf(c) !== i);
  if (dup) throw new ManifestError(`column "${dup}" appears twice`, line);
  if (!cols.includes('device_id')) throw new ManifestError('the header has no device_id column', line);
  return cols as ManifestColumn[];
}

const countNewlines = (s: string): number => {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
};

/** CSV with a header row (RFC 4180; quoted fields may span lines: an inline PEM CSR). */
async function* csvRecords(source: AsyncIterable<Buffer | string>): AsyncGenerator<{ line: number; fields: RawFields } | { line: number; error: string }> {
  const parser = Readable.from(source).pipe(
    parseCsv({ bom: true, raw: true, skip_empty_lines: true, relax_column_count: true, max_record_size: MAX_RECORD_CHARS }),
  );
  let columns: ManifestColumn[] | null = null;
  // line accounting from each record's raw text: csv-parse's own `lines` counts differently for
  // quoted multi-line fields, so the start line is derived from the consumed text instead
  let consumed = 0;
  try {
    for await (const r of parser as AsyncIterable<{ record: string[]; raw: string }>) {
      const leading = /^(?:\r?\n)*/.exec(r.raw)![0];
      const line = consumed + 1 + countNewlines(leading);
      consumed += countNewlines(r.raw);
      if (columns === null) {
        columns = checkColumns(r.record, line);
        continue;
      }
      if (r.record.every((v) => v.trim() === '')) continue;
      if (r.record.length !== columns.length) {
        yield { line, error: `expected ${columns.length} fields (the header's), found ${r.record.length}` };
        continue;
      }
      const fields: RawFields = {};
      columns.forEach((c, i) => (fields[c] = r.record[i]!));
      yield { line, fields };
    }
  } catch (e) {
    const err = e as { code?: string; message?: string; lines?: number };
    if (typeof err.code === 'string' && err.code.startsWith('CSV_')) throw new ManifestError(err.message ?? err.code, err.lines ?? null);
    throw e;
  }
  if (columns === null) throw new ManifestError('empty manifest: no header row');
}

/** JSON Lines: one object per line; blank lines are skipped. */
async function* jsonlRecords(source: AsyncIterable<Buffer | string>): AsyncGenerator<{ line: number; fields: RawFields } | { line: number; error: string }> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  const one = (raw: string): { line: number; fields: RawFields } | { line: number; error: string } | null => {
    line++;
    const t = (line === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (t === '') return null;
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      return { line, error: `not valid JSON: ${(e as Error).message}` };
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return { line, error: 'not a JSON object' };
    const fields: RawFields = {};
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      if (!(MANIFEST_COLUMNS as readonly string[]).includes(k)) return { line, error: `unknown field "${k}" (known: ${MANIFEST_COLUMNS.join(', ')})` };
      if (val === null) continue;
      if (typeof val === 'string') fields[k as ManifestColumn] = val;
      else if (k === 'mac' && Array.isArray(val) && val.every((m) => typeof m === 'string')) fields.mac = val as string[];
      else if (typeof val === 'number' && (k === 'serial_number' || k === 'firmware' || k === 'model')) fields[k as ManifestColumn] = String(val);
      else return { line, error: `${k} must be a string${k === 'mac' ? ' or an array of strings' : ''}` };
    }
    return { line, fields };
  };
  for await (const chunk of source) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const r = one(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      if (r) yield r;
    }
    if (pending.length > MAX_RECORD_CHARS) throw new ManifestError(`line longer than ${MAX_RECORD_CHARS} characters`, line + 1);
  }
  pending += decoder.end();
  if (pending !== '') {
    const r = one(pending);
    if (r) yield r;
  }
}

/** Peeks at the first non-blank character: `{` is JSON Lines, anything else CSV. */
async function detect(source: AsyncIterable<Buffer | string>): Promise<{ format: ManifestFormat; source: AsyncIterable<Buffer | string> }> {
  const it = source[Symbol.asyncIterator]();
  const head: Array<Buffer | string> = [];
  let format: ManifestFormat | null = null;
  while (format === null) {
    const n = await it.next();
    if (n.done) break;
    head.push(n.value);
    const s = (typeof n.value === 'string' ? n.value : n.value.toString('latin1')).replace(/^(\uFEFF|\xef\xbb\xbf)/, '').trimStart();
    if (s !== '') format = s.startsWith('{') ? 'jsonl' : 'csv';
  }
  async function* replay(): AsyncGenerator<Buffer | string> {
    yield* head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  return { format: format ?? 'csv', source: replay() };
}

/**
 * Counts a manifest's data rows (records, or record errors) without validating them: the cheap
 * first pass of a batch that is not --strict. Throws ManifestError like parseManifest.
 */
export async function countManifestRows(source: AsyncIterable<Buffer | string>, format?: ManifestFormat): Promise<number> {
  const detected = format ? { format, source } : await detect(source);
  let n = 0;
  for await (const r of detected.format === 'jsonl' ? jsonlRecords(detected.source) : csvRecords(detected.source)) {
    void r;
    n++;
  }
  return n;
}

/**
 * Parses and validates a manifest as a stream: one entry per data row, in input order, each a
 * valid row or a reject. `format` defaults to detection from the first character.
 * Throws ManifestError when the manifest as a whole cannot be read.
 */
export async function* parseManifest(source: AsyncIterable<Buffer | string>, ctx: ManifestContext, format?: ManifestFormat): AsyncGenerator<ManifestEntry> {
  const detected = format ? { format, source } : await detect(source);
  const records = detected.format === 'jsonl' ? jsonlRecords(detected.source) : csvRecords(detected.source);
  const seen = new Map<string, number>();
  for await (const r of records) {
    if ('error' in r) yield { ok: false, reject: { line: r.line, deviceId: null, reason: r.error } };
    else yield entryOf(r.fields, r.line, ctx, seen);
  }
}
