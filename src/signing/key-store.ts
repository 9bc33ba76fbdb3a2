/**
 * Private keys at rest: encrypted PKCS#8 PEM files in `<dataDir>/keys/`, mode 0600, written
 * atomically (temp file + rename). Nothing here ever writes an unencrypted private key.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync, chmodSync } from 'node:fs';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { exportEncryptedKey, importEncryptedKey } from './keys.js';

export interface KeyStore {
  save(name: string, key: KeyObject): string;
  load(name: string): KeyObject | null;
  has(name: string): boolean;
  remove(name: string): void;
  pathOf(name: string): string;
}

export class FileKeyStore implements KeyStore {
  constructor(private readonly dir: string, private readonly passphrase: string) {
    if (!passphrase) throw new Error('a key passphrase is required');
  }

  pathOf(name: string): string {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`bad key name ${name}`);
    return path.join(this.dir, `${name}.key.pem`);
  }

  save(name: string, key: KeyObject): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = this.pathOf(name);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, exportEncryptedKey(key, this.passphrase), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    return file;
  }

  load(name: string): KeyObject | null {
    const file = this.pathOf(name);
    if (!existsSync(file)) return null;
    return importEncryptedKey(readFileSync(file, 'utf8'), this.passphrase);
  }

  /** Loads a key from an explicit file (e.g. `--root-key FILE` for an offline root). */
  loadFile(file: string): KeyObject {
    return importEncryptedKey(readFileSync(file, 'utf8'), this.passphrase);
  }

  has(name: string): boolean {
    return existsSync(this.pathOf(name));
  }

  remove(name: string): void {
    const file = this.pathOf(name);
    if (existsSync(file)) unlinkSync(file);
  }
}
