/**
 * An export folder that is replaced atomically: `DIR` is a symbolic link to a complete versioned
 * folder built beside it (`DIR.v1`, `DIR.v2`, ...). A new version is written under a temporary name,
 * flushed, renamed to its version name, and then a new link is renamed over `DIR`: rename(2) of a
 * symlink is atomic, so a reader (FreeRADIUS starting up) sees the whole old or the whole new
 * folder, never a mix. (Renaming a folder onto a non-empty folder fails, hence the link.)
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, writeSync, accessSync, constants } from 'node:fs';
import path from 'node:path';
import { badRequest, internal } from '../core/errors.js';
import type { ExportEntry } from './freeradius.js';

export interface VersionedDir {
  /** Absolute path of DIR (the symlink). */
  out: string;
  parent: string;
  base: string;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? '';

/** What an I/O failure tells an operator; permission problems are bad input (exit 2), the rest internal. */
function ioError(what: string, e: unknown): Error {
  const code = errCode(e);
  const msg = `${what}: ${(e as Error).message}`;
  return ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'ENOSPC', 'EDQUOT'].includes(code) ? badRequest(msg) : internal(msg, e);
}

/**
 * Checks `--out` before anything is written: it may be missing (its parent is created), a symlink
 * to a folder (a previous export, or a link the operator made), or an empty folder (replaced by the
 * link); a file, or a folder with content, is refused. The parent must be writable.
 */
export function openVersionedDir(outArg: string): VersionedDir {
  const out = path.resolve(outArg);
  const parent = path.dirname(out);
  const base = path.basename(out);
  if (out === parent) throw badRequest(`--out ${outArg}: not a folder fleetca can replace`);
  let st: ReturnType<typeof lstatSync> | null = null;
  try {
    st = lstatSync(out);
  } catch (e) {
    if (errCode(e) === 'ENOTDIR') throw badRequest(`--out ${outArg}: a parent of it is a file`);
    if (errCode(e) !== 'ENOENT') throw ioError(`--out ${outArg}`, e);
  }
  if (st?.isSymbolicLink()) {
    let target: ReturnType<typeof statSync> | null;
    try {
      target = statSync(out);
    } catch {
      target = null; // dangling: replaced
    }
    if (target && !target.isDirectory()) throw badRequest(`--out ${outArg} is a link to a file; give a folder path`);
  } else if (st?.isDirectory()) {
    if (readdirSync(out).length > 0) {
      throw badRequest(`--out ${outArg} is a folder with content; fleetca keeps --out as a link to versioned folders beside it: give a new path, or empty it`);
    }
  } else if (st) {
    throw badRequest(`--out ${outArg} is a file; give a folder path`);
  }
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw ioError(`--out ${outArg}: cannot create ${parent}`, e);
  }
  try {
    accessSync(parent, constants.W_OK);
  } catch (e) {
    throw ioError(`--out ${outArg}: ${parent} is not writable`, e);
  }
  return { out, parent, base };
}

/** The versioned folder DIR points at now (its name, beside DIR), or null. */
export function currentVersion(d: VersionedDir): string | null {
  try {
    if (!lstatSync(d.out).isSymbolicLink()) return null;
    const target = readlinkSync(d.out);
    return path.dirname(path.resolve(d.parent, target)) === d.parent ? path.basename(target) : null;
  } catch {
    return null;
  }
}

/** Reads one file of the version DIR points at (null when missing). */
export function readCurrentFile(d: VersionedDir, rel: string): Buffer | null {
  try {
    return readFileSync(path.join(d.out, rel));
  } catch {
    return null;
  }
}

function versionRe(d: VersionedDir): RegExp {
  return new RegExp(`^${d.base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.v(\\d+)(\\.tmp-\\d+)?$`);
}

function writeFileDurably(file: string, content: Buffer): void {
  const fd = openSync(file, 'wx', 0o644);
  try {
    let off = 0;
    while (off < content.length) off += writeSync(fd, content, off, content.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `entries` as a new version and switches DIR to it; returns the version's name. On any
 * failure the half-built folder is removed and DIR still points where it did.
 */
export function publishVersion(d: VersionedDir, entries: readonly ExportEntry[]): string {
  const re = versionRe(d);
  let n = 0;
  for (const name of readdirSync(d.parent)) {
    const m = re.exec(name);
    if (m) n = Math.max(n, Number(m[1]));
  }
  const version = `${d.base}.v${n + 1}`;
  const tmp = path.join(d.parent, `${version}.tmp-${process.pid}`);
  const final = path.join(d.parent, version);
  const link = path.join(d.parent, `.${d.base}.link-${process.pid}`);
  try {
    mkdirSync(tmp, { mode: 0o755 });
    const dirs = new Set<string>([tmp]);
    for (const e of entries) {
      const p = path.join(tmp, e.path);
      if (!p.startsWith(tmp + path.sep)) throw internal(`export entry outside the folder: ${e.path}`);
      const parent = path.dirname(p);
      if (!dirs.has(parent)) {
        mkdirSync(parent, { recursive: true, mode: 0o755 });
        dirs.add(parent);
      }
      if ('link' in e) symlinkSync(e.link, p);
      else writeFileDurably(p, e.content);
    }
    for (const dir of dirs) fsyncDir(dir);
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw ioError(`cannot write ${final}`, e);
  }
  try {
    rmSync(link, { force: true });
    symlinkSync(version, link);
    const st = lstatSync(d.out, { throwIfNoEntry: false });
    if (st?.isDirectory()) rmdirSync(d.out); // the empty folder openVersionedDir accepted
    renameSync(link, d.out);
    fsyncDir(d.parent);
  } catch (e) {
    rmSync(link, { force: true });
    rmSync(final, { recursive: true, force: true });
    throw ioError(`cannot switch ${d.out} to ${version}`, e);
  }
  return version;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM';
  }
}

/** Removes the versions beside DIR that are not in `keep` (and leftovers of interrupted writes). */
export function pruneVersions(d: VersionedDir, keep: ReadonlySet<string>): string[] {
  const re = versionRe(d);
  const current = currentVersion(d);
  const removed: string[] = [];
  for (const name of readdirSync(d.parent)) {
    const m = re.exec(name);
    if (!m || name === current || keep.has(name)) continue;
    if (m[2] && alive(Number(m[2].slice(5)))) continue; // being written by a running export
    rmSync(path.join(d.parent, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
