/**
 * Keeping a FreeRADIUS export current (`fleetca export freeradius --watch`): rebuild when a
 * certificate changes status or a CRL is published (LISTEN/NOTIFY, when the store offers it) and at
 * every --interval; switch DIR atomically to the new version only when something FreeRADIUS acts on
 * changed (or the exported CRLs reach half their validity); then run the reload command. A failed
 * build or reload is reported and retried with backoff; DIR keeps pointing at a complete version,
 * and the version FreeRADIUS last loaded (the last successful reload) is never pruned.
 */
import { spawn } from 'node:child_process';
import type { Clock } from '../core/clock.js';
import type { FreeradiusExport } from './freeradius.js';
import { currentVersion, publishVersion, readCurrentFile, type VersionedDir } from './versioned-dir.js';

export interface BuildResult {
  /** DIR now points at a new version. */
  switched: boolean;
  /** The version DIR points at. */
  version: string;
  /** The version DIR pointed at before (null: none). */
  previous: string | null;
  digest: string;
}

/**
 * Renders the export and switches DIR to it when its digest differs from the current version's, or
 * the current version's CRLs have reached half their validity (`refresh_at`).
 */
export async function buildFreeradiusVersion(deps: { dir: VersionedDir; clock: Clock; render: () => Promise<FreeradiusExport> }): Promise<BuildResult> {
  const exp = await deps.render();
  const previous = currentVersion(deps.dir);
  if (previous) {
    let manifest: { digest?: unknown; refresh_at?: unknown } | null;
    try {
      manifest = JSON.parse(readCurrentFile(deps.dir, 'fleetca-export.json')?.toString('utf8') ?? 'null') as { digest?: unknown; refresh_at?: unknown } | null;
    } catch {
      manifest = null;
    }
    const refreshAt = typeof manifest?.refresh_at === 'string' ? Date.parse(manifest.refresh_at) : NaN;
    const due = Number.isFinite(refreshAt) && refreshAt <= deps.clock.now().getTime();
    if (manifest?.digest === exp.digest && !due) return { switched: false, version: previous, previous, digest: exp.digest };
  }
  const version = publishVersion(deps.dir, exp.entries);
  return { switched: true, version, previous, digest: exp.digest };
}

export interface ReloadResult {
  ok: boolean;
  /** "exit 3", "signal SIGKILL", "timed out after 60 s", or the spawn error. */
  status: string;
  /** The end of its stdout and stderr. */
  output: string;
}

/**
 * Runs the reload command with `/bin/sh -c`. It is done when the shell exits (a daemon it starts
 * must not keep its stdout/stderr: redirect them); it is killed after `timeoutMs`.
 */
export function runReloadCommand(cmd: string, timeoutMs = 60_000): Promise<ReloadResult> {
  return new Promise((resolve) => {
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-2000);
    };
    const p = spawn('/bin/sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutMs);
    const done = (r: ReloadResult) => {
      clearTimeout(timer);
      p.stdout.destroy();
      p.stderr.destroy();
      resolve(r);
    };
    p.once('error', (e) => done({ ok: false, status: e.message, output }));
    p.once('exit', (code, signal) => {
      if (timedOut) done({ ok: false, status: `timed out after ${Math.round(timeoutMs / 1000)} s`, output: output.trim() });
      else done({ ok: code === 0, status: code !== null ? `exit ${code}` : `signal ${signal}`, output: output.trim() });
    });
  });
}

export type ChangeKind = 'status' | 'crl' | 'resync';

export interface WatchDeps {
  build: () => Promise<BuildResult>;
  /** Runs the reload command; null when there is none. */
  reload: (() => Promise<ReloadResult>) | null;
  /** Removes versions not in `keep` (DIR's own target is always kept); returns what it removed. */
  prune: (keep: ReadonlySet<string>) => string[];
  /** Starts listening for changes; null: poll only. */
  subscribe: ((onChange: (what: ChangeKind) => void) => Promise<{ close(): Promise<void> }>) | null;
  intervalMs: number;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  signal: AbortSignal;
  /** The build the command made before watching (so that bad input fails before the loop). */
  initial: BuildResult;
  /** Delay before a status change is acted on (changes arriving meanwhile are gathered). */
  changeDebounceMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** Runs until `signal` aborts. */
export async function watchFreeradius(deps: WatchDeps): Promise<void> {
  const debounce = deps.changeDebounceMs ?? 100;
  const retryBase = deps.retryBaseMs ?? 1000;
  const retryMax = deps.retryMaxMs ?? 30_000;
  // the version FreeRADIUS has loaded as far as we know: before our first switch, what DIR was
  let live: string | null = deps.initial.switched ? deps.initial.previous : deps.initial.version;
  let pending: string | null = deps.initial.switched ? deps.initial.version : null;
  let failures = 0;
  let running: Promise<void> | null = null;
  let again = false;
  let timer: NodeJS.Timeout | null = null;
  let timerAt = Infinity;

  const schedule = (delayMs: number) => {
    if (deps.signal.aborted) return;
    const at = Date.now() + delayMs;
    if (timer && timerAt <= at) return;
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = null;
      timerAt = Infinity;
      run();
    }, delayMs);
  };

  const backoff = () => Math.min(retryBase * 2 ** Math.min(failures - 1, 16), retryMax);

  const settle = (version: string) => {
    live = version;
    pending = null;
    const removed = deps.prune(new Set([version]));
    if (removed.length) deps.log('info', `removed old versions ${removed.join(', ')}`);
  };

  const once = async () => {
    const r = await deps.build();
    if (r.switched) {
      deps.log('info', `switched to ${r.version}`);
      pending = r.version;
    }
    if (pending === null) return;
    if (!deps.reload) {
      settle(pending);
      return;
    }
    const res = await deps.reload();
    if (res.ok) {
      deps.log('info', `reload command succeeded for ${pending}`);
      failures = 0;
      settle(pending);
      return;
    }
    failures++;
    const wait = backoff();
    deps.log(
      'error',
      `reload command failed (${res.status})${res.output ? `: ${res.output}` : ''}; retrying in ${Math.round(wait / 100) / 10} s. ` +
        `The export is complete (${pending}); ${live ? `${live}, the version last reloaded, is kept` : 'nothing was reloaded yet'}`,
    );
    schedule(wait);
  };

  const run = () => {
    if (deps.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        await once();
        if (!pending) failures = 0;
      } catch (e) {
        failures++;
        const wait = backoff();
        deps.log('error', `export failed: ${(e as Error).message}; retrying in ${Math.round(wait / 100) / 10} s (${live ?? 'the current version'} stays in place)`);
        schedule(wait);
      } finally {
        running = null;
        if (again) {
          again = false;
          schedule(0);
        }
      }
    })();
  };

  let sub: { close(): Promise<void> } | null = null;
  if (deps.subscribe) {
    try {
      sub = await deps.subscribe((what) => schedule(what === 'status' ? debounce : 0));
    } catch (e) {
      deps.log('warn', `cannot listen for changes (${(e as Error).message}); polling every ${deps.intervalMs} ms`);
    }
  }
  const poll = setInterval(run, deps.intervalMs);
  deps.log('info', `watching: ${sub ? 'status changes and CRL publications (LISTEN/NOTIFY), and ' : ''}a check every ${deps.intervalMs} ms`);
  if (pending) schedule(0); // the first version still has to be reloaded
  else deps.prune(new Set(live ? [live] : []));

  await new Promise<void>((resolve) => {
    if (deps.signal.aborted) resolve();
    else deps.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(poll);
  if (timer) clearTimeout(timer);
  await sub?.close().catch(() => undefined);
  while (running) await running;
}
