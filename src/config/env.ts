/**
 * The only reader of environment variables. Each is documented here and in the README.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Env {
  /** FLEETCA_DATA_DIR: where keys, CA certificates and the embedded PostgreSQL live (default ./data). */
  dataDir: string;
  /** FLEETCA_CONFIG_DIR: the ca-config directory (default ./ca-config, else the one shipped with fleetca). */
  configDir: string;
  /** DATABASE_URL: a managed PostgreSQL; unset = the embedded cluster in the data dir. */
  databaseUrl: string | undefined;
  /** FLEETCA_KEY_PASSPHRASE: passphrase of the encrypted CA private keys; unset = the generated one in the data dir. */
  keyPassphrase: string | undefined;
  /** LOG_LEVEL: pino level (default info). */
  logLevel: string;
  /**
   * FLEETCA_FAULT: test-only fault injection. `crash-after-sign` ends the process between the
   * signature and the database commit, to prove that nothing is returned and start-up reconciles.
   */
  fault: 'crash-after-sign' | undefined;
}

/** The package root (the folder holding package.json and ca-config/), from src/ or dist/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'ca-config'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the fleetca package root');
}

export function readEnv(e: NodeJS.ProcessEnv = process.env): Env {
  const local = path.resolve('ca-config');
  return {
    dataDir: path.resolve(e.FLEETCA_DATA_DIR ?? 'data'),
    configDir: path.resolve(e.FLEETCA_CONFIG_DIR ?? (existsSync(path.join(local, 'ca.yaml')) ? local : path.join(packageRoot(), 'ca-config'))),
    databaseUrl: e.DATABASE_URL || undefined,
    keyPassphrase: e.FLEETCA_KEY_PASSPHRASE || undefined,
    logLevel: e.LOG_LEVEL ?? 'info',
    fault: e.FLEETCA_FAULT === 'crash-after-sign' ? 'crash-after-sign' : undefined,
  };
}
