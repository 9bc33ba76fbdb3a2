/**
 * The data dir (`--data-dir`, FLEETCA_DATA_DIR, default ./data):
 *
 *   fleetca.json        public URL and creation time (written by init)
 *   key-passphrase      generated passphrase, mode 0600 — only when FLEETCA_KEY_PASSPHRASE is unset
 *   keys/*.key.pem      encrypted PKCS#8 private keys (CAs, OCSP responders, SCEP RA, TLS server)
 *   certs/*.pem         the matching certificates (TLS server: leaf + issuing CA)
 *   pg/                 the embedded PostgreSQL cluster (when DATABASE_URL is unset)
 */
import crypto from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';

export interface DataDirState {
  publicUrl: string;
  createdAt: string;
  version: 1;
}

export class DataDir {
  constructor(readonly root: string) {}

  get stateFile(): string {
    return path.join(this.root, 'fleetca.json');
  }
  get keysDir(): string {
    return path.join(this.root, 'keys');
  }
  get certsDir(): string {
    return path.join(this.root, 'certs');
  }
  get passphraseFile(): string {
    return path.join(this.root, 'key-passphrase');
  }

  ensure(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    mkdirSync(this.certsDir, { recursive: true });
  }

  isInitialised(): boolean {
    return existsSync(this.stateFile);
  }

  readState(): DataDirState {
    if (!this.isInitialised()) throw new Error(`${this.root} is not initialised: run \`fleetca init\` first`);
    return JSON.parse(readFileSync(this.stateFile, 'utf8')) as DataDirState;
  }

  writeState(s: DataDirState): void {
    this.writeAtomic(this.stateFile, JSON.stringify(s, null, 2) + '\n', 0o644);
  }

  writeCert(name: string, pem: string): string {
    this.ensure();
    const file = path.join(this.certsDir, `${name}.pem`);
    this.writeAtomic(file, pem, 0o644);
    return file;
  }

  readCert(name: string): string {
    return readFileSync(path.join(this.certsDir, `${name}.pem`), 'utf8');
  }

  /**
   * The key passphrase: FLEETCA_KEY_PASSPHRASE when set; else the generated file. With
   * `create`, a missing file is generated (256 random bits, mode 0600) and `generated` is true.
   */
  passphrase(fromEnv: string | undefined, create: boolean): { passphrase: string; generated: boolean } {
    if (fromEnv) return { passphrase: fromEnv, generated: false };
    if (existsSync(this.passphraseFile)) {
      return { passphrase: readFileSync(this.passphraseFile, 'utf8').trim(), generated: false };
    }
    if (!create) throw new Error(`no key passphrase: set FLEETCA_KEY_PASSPHRASE or restore ${this.passphraseFile}`);
    this.ensure();
    const p = crypto.randomBytes(32).toString('base64url');
    this.writeAtomic(this.passphraseFile, p + '\n', 0o600);
    return { passphrase: p, generated: true };
  }

  private writeAtomic(file: string, content: string, mode: number): void {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, content, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, file);
  }
}
