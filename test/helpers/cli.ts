/**
 * Runs the real `fleetca` CLI in a child process (from source, through tsx), as an operator
 * would, and starts `fleetca serve` in the background.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BIN = path.resolve('test/helpers/fleetca-bin.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function fleetca(args: string[], env: Record<string, string | undefined>, input?: string | Buffer): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    input,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface RunningServe {
  proc: ChildProcess;
  httpUrl: string;
  httpsUrl: string;
  stop(): Promise<number | null>;
  stderr(): string;
}

/** Starts `fleetca serve` on free ports and waits for its ready line. */
export function startServe(env: Record<string, string | undefined>, extra: string[] = []): Promise<RunningServe> {
  const proc = spawn(process.execPath, ['--import', 'tsx', BIN, 'serve', '--http-port', '0', '--https-port', '0', ...extra], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${err}`)), 60_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}:\n${err}`));
    });
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /fleetca listening http=(\S+) https=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        resolve({
          proc,
          httpUrl: m[1]!,
          httpsUrl: m[2]!,
          stderr: () => err,
          stop: () =>
            new Promise((res) => {
              if (proc.exitCode !== null) return res(proc.exitCode);
              proc.once('exit', (code) => res(code));
              proc.kill('SIGTERM');
            }),
        });
      }
    });
  });
}

/** A copy of the shipped ca-config with edits applied, for tests that need other settings. */
export function configCopy(edit: (dir: string) => void): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-cfg-'));
  cpSync(path.resolve('ca-config'), dir, { recursive: true });
  edit(dir);
  return dir;
}

export function replaceInFile(file: string, from: string, to: string): void {
  const s = readFileSync(file, 'utf8');
  if (!s.includes(from)) throw new Error(`${from} not in ${file}`);
  writeFileSync(file, s.replace(from, to));
}

/** openssl, with the command line in the error when it fails. */
export function openssl(args: string[], input?: string | Buffer): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function opensslOk(args: string[], input?: string | Buffer): string {
  const r = openssl(args, input);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
