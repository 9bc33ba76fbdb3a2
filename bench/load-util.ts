/**
 * What the load benchmarks (bench/est.ts, bench/scep.ts) share: CPU accounting from /proc, a V8
 * profiler of the server thread, a statement counter for the pg client, and the forked load-client
 * process they drive, and the served CA each section measures.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { readEnv, type Env } from '../src/config/env.js';
import { runCli } from '../src/cli/program.js';
import { openRuntime, type Runtime } from '../src/main/runtime.js';
import { startServer, type RunningServer } from '../src/main/server.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** utime + stime of a /proc stat file, in clock ticks (1/100 s on Linux); 0 when it is gone. */
export function procTicks(file: string): number {
  try {
    const f = readFileSync(file, 'latin1');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return 0;
  }
}

export interface Ticks {
  machineBusy: number;
  machineTotal: number;
  /** This process: all threads, and the main thread alone. */
  proc: number;
  main: number;
  /** The embedded cluster: the postmaster and each of its children alive now, by pid. */
  postgres: Map<number, number>;
}

/** PostgreSQL CPU between two snapshots: processes that started since count whole, ones that ended are lost. */
export function postgresDelta(a: Ticks, b: Ticks): number {
  let sum = 0;
  for (const [pid, t] of b.postgres) sum += t - (a.postgres.get(pid) ?? 0);
  return sum;
}

/** CPU counters of the machine, this process and the cluster whose postmaster is `pgPid` (Linux /proc). */
export function ticks(pgPid: number | null): Ticks | null {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const postgres = new Map<number, number>();
    if (pgPid !== null) {
      for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        let stat: string;
        try {
          stat = readFileSync(`/proc/${d}/stat`, 'latin1');
        } catch {
          continue;
        }
        const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(d) === pgPid || Number(rest[1]) === pgPid) postgres.set(Number(d), Number(rest[11]) + Number(rest[12]));
      }
    }
    return {
      machineBusy: total - f[3]! - (f[4] ?? 0),
      machineTotal: total,
      proc: procTicks('/proc/self/stat'),
      main: procTicks(`/proc/self/task/${process.pid}/stat`),
      postgres,
    };
  } catch {
    return null;
  }
}

/** A V8 CPU profile of this thread until stop(file). */
export async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/**
 * Counts the statements this process sends to PostgreSQL, by their first words (a diagnostic of
 * --est-profile: pg's Client.query is wrapped for the whole section).
 */
export function countStatements(): { take(): Map<string, number>; restore(): void } {
  let counts = new Map<string, number>();
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...a: unknown[]) {
    const q = a[0];
    const text = typeof q === 'string' ? q : ((q as { text?: string; name?: string } | undefined)?.text ?? '?');
    const words = text.replace(/\s+/g, ' ').trim().slice(0, 200);
    const m = /^(WITH \w+ AS \( )?(\w+)( \w+)?( [\w.]+)?( [\w.]+)?/i.exec(words);
    const key = m ? m[0].slice(0, 60) : words.slice(0, 60);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return original.apply(this, a);
  };
  return {
    take() {
      const c = counts;
      counts = new Map();
      return c;
    },
    restore() {
      proto.query = original;
    },
  };
}

/**
 * A tsx script in a child process, called one request at a time: each call sends a message and
 * waits for the reply of the type it names; any other reply type ({ type: 'error', message }) rejects.
 */
export class ForkedChild {
  private readonly proc: ChildProcess;
  private pending: { type: string; resolve: (v: unknown) => void; reject: (e: Error) => void } | null = null;

  constructor(
    script: URL,
    private readonly label: string,
    opts: { args?: string[]; execArgv?: string[] } = {},
  ) {
    this.proc = fork(script, opts.args ?? [], { execArgv: ['--import', 'tsx', ...(opts.execArgv ?? [])], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: { type: string; value?: unknown; message?: string }) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      if (m.type === p.type) p.resolve(m.value);
      else p.reject(new Error(`${this.label}: ${m.message ?? m.type}`));
    });
    this.proc.on('exit', (code) => {
      this.pending?.reject(new Error(`${this.label} exited (${code})`));
      this.pending = null;
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  protected call<T>(message: object, reply: string): Promise<T> {
    if (this.pending) throw new Error(`${this.label} busy`);
    return new Promise<T>((resolve, reject) => {
      this.pending = { type: reply, resolve: resolve as (v: unknown) => void, reject };
      this.proc.send(message);
    });
  }

  /** Disconnects and waits for the process to exit. */
  close(): Promise<void> {
    if (this.proc.exitCode !== null || !this.proc.connected) return Promise.resolve();
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.disconnect();
    return exited;
  }
}

/** A load-generator process (a tsx script answering prepare/go messages), reused for every run. */
export class ForkedLoadClient<Job, Result> extends ForkedChild {
  constructor(script: URL, execArgv: string[] = []) {
    super(script, 'load client', { execArgv });
  }

  /** Hands the client a job: it builds its connections' contexts and request bytes (not measured). */
  prepare(job: Job): Promise<void> {
    return this.call({ type: 'prepare', job }, 'ready');
  }

  /** Runs the prepared job. */
  go(): Promise<Result> {
    return this.call({ type: 'go' }, 'result');
  }

  async run(job: Job): Promise<Result> {
    await this.prepare(job);
    return this.go();
  }
}

/** A CA initialised and served the way `fleetca init` + `fleetca serve` do it, for one bench section. */
export interface ServedCa {
  rt: Runtime;
  server: RunningServer;
  /** The embedded cluster's postmaster, for PostgreSQL CPU accounting (null: not measured). */
  pgPid: number | null;
  /** Run in reverse order when the section ends (the section adds its client, floor, …). */
  cleanup: Array<() => Promise<void> | void>;
  /** When the section started (performance.now()). */
  s0: number;
}

/** A CA initialised by `fleetca init` and opened as `fleetca serve` opens it, not listening. */
export type InitialisedCa = Omit<ServedCa, 'server'>;

/**
 * Initialises a CA in `tmp/<name>` through the CLI's own `init` action, opens it as `fleetca serve`
 * does (logging at info into /dev/null), runs `fn`, then cleans up in reverse: what `fn`
 * registered, the runtime and its PostgreSQL.
 */
export async function withInitialisedCa(o: { tmp: string; log: (s: string) => void }, name: string, fn: (ca: InitialisedCa) => Promise<void>): Promise<void> {
  const { log } = o;
  const s0 = performance.now();
  const dataDir = path.join(o.tmp, name);
  const logger = pino({ level: 'info', base: { svc: 'fleetca' } }, pino.destination({ dest: '/dev/null', sync: true }));
  const env: Env = { ...readEnv(), dataDir, databaseUrl: undefined, keyPassphrase: 'bench-passphrase', logLevel: 'info', fault: undefined };
  const code = await runCli(
    {
      env,
      out: () => undefined,
      err: (s) => log(`  ${s.trim()}`),
      open: (x) => openRuntime({ env, dataDir: x.dataDir, log: logger, ...(x.loadIssuers === false ? { loadIssuers: false } : {}) }),
      serve: () => Promise.reject(new Error('not in the bench')),
    },
    ['init', '--data-dir', dataDir],
  );
  if (code !== 0) throw new Error(`fleetca init exited ${code}`);
  const rt = await openRuntime({ env, dataDir, workers: 'server', poolSize: 16, log: logger });
  const cleanup: Array<() => Promise<void> | void> = [() => rt.close()];
  try {
    let pgPid: number | null = null;
    try {
      pgPid = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'latin1').split('\n')[0]);
    } catch {
      log('  (no postmaster.pid: PostgreSQL CPU is not measured)');
    }
    await fn({ rt, pgPid, cleanup, s0 });
  } finally {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch((e: unknown) => log(`  cleanup: ${(e as Error).message}`));
  }
}

/**
 * Initialises a CA in `tmp/<name>` (withInitialisedCa), starts both listeners on free ports, runs
 * `fn`, then cleans up in reverse: what `fn` registered, the server, the runtime and its PostgreSQL.
 */
export async function withServedCa(o: { tmp: string; log: (s: string) => void }, name: string, fn: (ca: ServedCa) => Promise<void>): Promise<void> {
  await withInitialisedCa(o, name, async ({ rt, pgPid, cleanup, s0 }) => {
    const server = await startServer(rt, { host: '127.0.0.1', httpPort: 0, httpsPort: 0 });
    cleanup.push(() => server.close());
    o.log(`  fleetca init + serve: ${((performance.now() - s0) / 1000).toFixed(1)} s`);
    await fn({ rt, server, pgPid, cleanup, s0 });
  });
}
