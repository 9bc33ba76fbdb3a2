/**
 * The output folder of a factory batch:
 *
 *   DIR/manifest.csv          device_id, serial, sha256_fingerprint, not_after[, secret] — one row per device
 *   DIR/devices/<id>/         cert.pem, chain.pem, and key.pem (encrypted PKCS#8) or bundle.p12
 *   DIR/rejects.csv           line, device_id, reason
 *   DIR/SHA256SUMS            `sha256sum -c` format, over every other file
 *
 * Files holding keys or secrets are mode 0600 (key.pem, bundle.p12, manifest.csv with secrets);
 * folders are 0700.
 *
 * While a batch runs, DIR/manifest.csv.partial is its journal: a device's row is appended only once
 * its files are complete (rows are gathered and appended in one write per chunk of devices, before
 * the chunk's records are committed). A resumed run reads it back (a torn last line is cut off) and
 * rewrites the files of every device without a row, so a device file may be written in place; the
 * files a resumed run reads back (key.pem) and the final ones (manifest.csv, rejects.csv,
 * SHA256SUMS) are written to a temporary name and renamed, so a killed process leaves the old file
 * or the new one, never half of one. When the batch completes, manifest.csv is written from the
 * journal in input order and the journal is removed.
 *
 * Device files are written with node's callback API on libuv's thread pool, never synchronously:
 * file creation waits on the filesystem journal, which PostgreSQL's commits keep busy on the same
 * disk (measured: synchronous writes stalled the event loop ~1 ms per device).
 */
import crypto from 'node:crypto';
import fs, { closeSync, constants, existsSync, ftruncateSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import { createReadStream } from 'node:fs';

export const MANIFEST_FILE = 'manifest.csv';
export const JOURNAL_FILE = 'manifest.csv.partial';
export const REJECTS_FILE = 'rejects.csv';
export const SUMS_FILE = 'SHA256SUMS';
export const DEVICES_DIR = 'devices';

/** One row of manifest.csv (and of the journal). */
export interface OutputRow {
  deviceId: string;
  /** Certificate serial, upper-case hex as `openssl x509 -serial` prints it; '' for a secret-only device. */
  serial: string;
  /** SHA-256 of the certificate DER, lowercase hex; '' without a certificate. */
  fingerprint: string;
  /** ISO 8601; '' without a certificate. */
  notAfter: string;
  /** The one-time enrollment secret; '' when the batch makes none. */
  secret: string;
}

const HEADER = ['device_id', 'serial', 'sha256_fingerprint', 'not_after', 'secret'];

function csvLine(cells: Array<string | number | null>): string {
  return stringify([cells.map((c) => (c === null ? '' : String(c)))], { record_delimiter: 'unix' });
}

/** A folder name for a device: device ids are [A-Za-z0-9][A-Za-z0-9._:-]*, so never '.', '..' or a '/'. */
function deviceFolder(deviceId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(deviceId)) throw new Error(`device id ${JSON.stringify(deviceId)} cannot be a folder name`);
  return path.join(DEVICES_DIR, deviceId);
}

export class BatchOutput {
  private journalFd: number | null = null;
  private journalBuffer = '';

  constructor(
    readonly root: string,
    private readonly withSecrets: boolean,
  ) {}

  /** Creates the folder (0700) if needed; `requireEmpty` refuses an existing non-empty one. */
  async prepare(requireEmpty: boolean): Promise<void> {
    if (requireEmpty && existsSync(this.root)) {
      const entries = await readdir(this.root);
      if (entries.length > 0) throw new Error(`the output folder ${this.root} is not empty (a new batch needs an empty or new folder)`);
    }
    await mkdir(path.join(this.root, DEVICES_DIR), { recursive: true, mode: 0o700 });
  }

  rel(deviceId: string, file: string): string {
    return path.join(deviceFolder(deviceId), file);
  }

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  /**
   * Writes a file with `mode`: in place, or with `atomic` to a fresh temporary name (created
   * exclusively, so it has exactly `mode`) renamed over the file.
   */
  async write(rel: string, data: Buffer | string, mode: number, atomic = false): Promise<void> {
    const file = this.abs(rel);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const once = (target: string, flag: string) =>
      new Promise<void>((resolve, reject) => fs.writeFile(target, bytes, { mode, flag }, (e) => (e ? reject(e) : resolve())));
    // the device's folder is made by its first file (no set of known folders: memory stays flat)
    const writeFile = (target: string, flag: string) =>
      once(target, flag).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
        await once(target, flag);
      });
    if (atomic) {
      // a fresh name, created exclusively: it has exactly `mode`
      const tmp = `${file}.${crypto.randomBytes(6).toString('hex')}.tmp`;
      await writeFile(tmp, 'wx');
      await new Promise<void>((resolve, reject) => fs.rename(tmp, file, (e) => (e ? reject(e) : resolve())));
    } else {
      // an existing file keeps its mode on open(): only this code creates these files, with `mode`
      await writeFile(file, 'w');
    }
  }

  /**
   * Makes a device's folder (0700) ahead of its files: a device issued now has none yet, and its
   * first write would otherwise fail (ENOENT) and be retried after the folder is made, one syscall
   * and a path walk more per device on the thread pool. An existing folder is fine.
   */
  async makeDeviceFolder(deviceId: string): Promise<void> {
    const dir = this.abs(deviceFolder(deviceId));
    await new Promise<void>((resolve, reject) => fs.mkdir(dir, { mode: 0o700 }, (e) => (e && e.code !== 'EEXIST' ? reject(e) : resolve()))).catch(
      async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await mkdir(dir, { recursive: true, mode: 0o700 }); // devices/ itself is gone
      },
    );
  }

  async exists(rel: string): Promise<boolean> {
    try {
      return (await stat(this.abs(rel))).isFile();
    } catch {
      return false;
    }
  }

  async read(rel: string): Promise<Buffer | null> {
    try {
      return await readFile(this.abs(rel));
    } catch {
      return null;
    }
  }

  async remove(rel: string): Promise<void> {
    await unlink(this.abs(rel)).catch(() => undefined);
  }

  /** Removes a device's folder (a row refused after its key was written). */
  async removeDevice(deviceId: string): Promise<void> {
    await rm(this.abs(deviceFolder(deviceId)), { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- the journal

  /**
   * The rows of manifest.csv, then of the journal (later rows win): what earlier runs completed.
   * A torn last journal line (a process killed mid-write) is cut off the file first.
   */
  async readCompleted(): Promise<Map<string, OutputRow>> {
    const out = new Map<string, OutputRow>();
    for (const file of [MANIFEST_FILE, JOURNAL_FILE]) {
      const p = this.abs(file);
      if (!existsSync(p)) continue;
      if (file === JOURNAL_FILE) cutTornLine(p);
      const parser = createReadStream(p).pipe(parseCsv({ relax_column_count: true }));
      let header = true;
      for await (const rec of parser as AsyncIterable<string[]>) {
        if (header) {
          header = false;
          if (rec[0] === 'device_id') continue;
        }
        if (rec.length < 4 || !rec[0]) continue;
        out.set(rec[0], { deviceId: rec[0], serial: rec[1] ?? '', fingerprint: rec[2] ?? '', notAfter: rec[3] ?? '', secret: rec[4] ?? '' });
      }
    }
    return out;
  }

  /** Opens the journal for appending (0600: it holds the secrets). */
  openJournal(): void {
    const p = this.abs(JOURNAL_FILE);
    const fresh = !existsSync(p);
    this.journalFd = openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
    if (fresh) writeSync(this.journalFd, csvLine(this.header()));
  }

  /** Queues one completed device's row; `flushJournal` appends the queued rows. */
  journal(row: OutputRow): void {
    if (this.journalFd === null) throw new Error('journal not open');
    this.journalBuffer += csvLine(this.cells(row));
  }

  /** Appends the queued rows in one write (a kill leaves them whole or the last one torn: then cut). */
  flushJournal(): void {
    if (this.journalFd === null || this.journalBuffer === '') return;
    const bytes = Buffer.from(this.journalBuffer, 'utf8');
    this.journalBuffer = '';
    for (let off = 0; off < bytes.length; ) off += writeSync(this.journalFd, bytes, off);
  }

  closeJournal(): void {
    if (this.journalFd !== null) {
      this.flushJournal();
      closeSync(this.journalFd);
    }
    this.journalFd = null;
  }

  private header(): string[] {
    return this.withSecrets ? HEADER : HEADER.slice(0, 4);
  }

  /** A row as its line of manifest.csv (what a run keeps of each device until the end). */
  line(row: OutputRow): string {
    return csvLine(this.cells(row));
  }

  private cells(r: OutputRow): string[] {
    const c = [r.deviceId, r.serial, r.fingerprint, r.notAfter];
    return this.withSecrets ? [...c, r.secret] : c;
  }

  // ---------------------------------------------------------------- completion

  /**
   * Writes manifest.csv (`lines` from line(), in the order given), rejects.csv and SHA256SUMS,
   * then removes the journal. SHA256SUMS covers every file under the folder except itself, in path
   * order; it is computed by reading the files back (a batch keeps no per-file state in memory),
   * and both large files are streamed out, never built whole in memory.
   */
  async finish(lines: readonly string[], rejects: Array<{ line: number; deviceId: string | null; reason: string }>): Promise<void> {
    this.closeJournal();
    await this.streamAtomic(MANIFEST_FILE, this.withSecrets ? 0o600 : 0o644, async (put) => {
      await put(csvLine(this.header()));
      for (const l of lines) await put(l);
    });
    await this.write(REJECTS_FILE, csvLine(['line', 'device_id', 'reason']) + rejects.map((r) => csvLine([r.line, r.deviceId, r.reason])).join(''), 0o644, true);
    await unlink(this.abs(JOURNAL_FILE)).catch(() => undefined);
    await this.streamAtomic(SUMS_FILE, 0o644, async (put) => {
      let batch: string[] = [];
      const flush = async () => {
        const digests = await Promise.all(batch.map(async (rel) => crypto.hash('sha256', await readFile(this.abs(rel)), 'hex')));
        // sha256sum's format: two spaces (text mode); names are ASCII without newlines
        await put(batch.map((rel, i) => `${digests[i]!}  ${rel.split(path.sep).join('/')}\n`).join(''));
        batch = [];
      };
      for await (const rel of walkSorted(this.root, '')) {
        if (rel.endsWith('.tmp')) {
          // a temporary file of a killed run (or the SHA256SUMS being written)
          if (!rel.startsWith(SUMS_FILE + '.')) await unlink(this.abs(rel)).catch(() => undefined);
          continue;
        }
        if (rel === SUMS_FILE || rel === JOURNAL_FILE) continue;
        batch.push(rel);
        if (batch.length >= 64) await flush();
      }
      await flush();
    });
  }

  /** Writes a file through `fill` to a fresh temporary name, then renames it over the file. */
  private async streamAtomic(rel: string, mode: number, fill: (put: (s: string) => Promise<void>) => Promise<void>): Promise<void> {
    const file = this.abs(rel);
    const tmp = `${file}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', mode);
    try {
      let buf = '';
      const put = async (chunk: string) => {
        buf += chunk;
        if (buf.length >= 1 << 16) {
          await fh.write(buf);
          buf = '';
        }
      };
      await fill(put);
      if (buf) await fh.write(buf);
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    await rename(tmp, file);
  }
}

/** Every regular file under `root/rel`, as paths relative to `root`, in sorted order, one folder at a time. */
async function* walkSorted(root: string, rel: string): AsyncGenerator<string> {
  const entries = (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel ? path.join(rel, e.name) : e.name;
    if (e.isDirectory()) yield* walkSorted(root, r);
    else if (e.isFile()) yield r;
  }
}

/** Cuts a file back to its last newline (a torn last line of an append-only journal). */
function cutTornLine(file: string): void {
  const fd = openSync(file, constants.O_RDWR);
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return;
    const tail = Buffer.alloc(Math.min(size, 64 * 1024));
    let end = size;
    // scan backwards for the last '\n'
    while (end > 0) {
      const start = Math.max(0, end - tail.length);
      const n = readSync(fd, tail, 0, end - start, start);
      const i = tail.subarray(0, n).lastIndexOf(0x0a);
      if (i >= 0) {
        const keep = start + i + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
  } finally {
    closeSync(fd);
  }
}
