/**
 * An in-memory CaStore for the "core issuance, no database" benchmark only: it isolates the CPU
 * cost of the pipeline (CSR verify, policy, TBS build, lints, signature) from PostgreSQL. It is
 * not used by any test: integration tests always run on a real PostgreSQL.
 */
import type {
  AuditEntry,
  CaStore,
  CertificateRecord,
  CrlBuildSession,
  CrlRecord,
  CrlStore,
  DeviceRecord,
  IssuanceIntent,
  IssuerRecord,
  NewCertificate,
  NewDevice,
  PendingIntent,
  RevokedEntry,
} from '../src/ca/ports.js';

export class MemoryStore implements CaStore, CrlStore {
  private intents = new Map<string, IssuanceIntent & { state: string }>();
  private certs = new Map<string, NewCertificate>();
  private bySpki = new Map<string, string>();
  private devices = new Map<string, DeviceRecord>();
  private issuers: IssuerRecord[] = [];
  private crlNumber = 0n;
  audit = 0;

  async recordIntent(i: IssuanceIntent, _a: AuditEntry): Promise<'recorded' | 'collision'> {
    if (this.intents.has(i.serial)) return 'collision';
    this.intents.set(i.serial, { ...i, state: 'pending' });
    this.audit++;
    return 'recorded';
  }
  async commitCertificate(c: NewCertificate, _a: AuditEntry): Promise<void> {
    this.intents.get(c.serial)!.state = 'issued';
    this.certs.set(c.serial, c);
    this.bySpki.set(c.spkiSha256.toString('hex'), c.serial);
    this.audit++;
  }
  async failIntent(serial: string): Promise<void> {
    const i = this.intents.get(serial);
    if (i) i.state = 'failed';
  }
  async listPendingIntents(): Promise<PendingIntent[]> {
    return [];
  }
  async getCertificate(): Promise<CertificateRecord | null> {
    return null;
  }
  async getCertificateByFingerprint(): Promise<CertificateRecord | null> {
    return null;
  }
  async listCertificates(): Promise<CertificateRecord[]> {
    return [];
  }
  async issuanceContext(deviceId: string, spkiSha256: Buffer) {
    return { device: this.devices.get(deviceId) ?? null, keyHolders: await this.findBySpki(spkiSha256) };
  }
  async findBySpki(spkiSha256: Buffer) {
    const serial = this.bySpki.get(spkiSha256.toString('hex'));
    if (!serial) return [];
    return [{ serial, deviceId: this.certs.get(serial)!.deviceId, status: 'valid' as const }];
  }
  async revoke(): Promise<CertificateRecord> {
    throw new Error('not in the benchmark');
  }
  async release(): Promise<CertificateRecord> {
    throw new Error('not in the benchmark');
  }
  async revokeDevice(): Promise<CertificateRecord[]> {
    throw new Error('not in the benchmark');
  }
  async releaseDevice(): Promise<CertificateRecord[]> {
    throw new Error('not in the benchmark');
  }
  async addDevice(d: NewDevice, at: Date): Promise<DeviceRecord> {
    const rec: DeviceRecord = {
      id: d.id,
      macs: d.macs ?? [],
      serialNumber: d.serialNumber ?? null,
      model: d.model ?? null,
      firmware: d.firmware ?? null,
      profile: d.profile ?? null,
      state: 'active',
      createdAt: at,
      updatedAt: at,
      lastEnrolledAt: null,
    };
    this.devices.set(d.id, rec);
    return rec;
  }
  async getDevice(id: string): Promise<DeviceRecord | null> {
    return this.devices.get(id) ?? null;
  }
  async updateDevice(): Promise<DeviceRecord> {
    throw new Error('not in the benchmark');
  }
  async listDevices(): Promise<DeviceRecord[]> {
    return [...this.devices.values()];
  }
  async upsertIssuer(i: Omit<IssuerRecord, 'id'>): Promise<IssuerRecord> {
    const rec = { ...i, id: this.issuers.length + 1 };
    this.issuers.push(rec);
    return rec;
  }
  async listIssuers(): Promise<IssuerRecord[]> {
    return this.issuers;
  }
  async appendAudit(): Promise<void> {}
  async listAudit() {
    return [];
  }
  async nextCrlNumber(): Promise<bigint> {
    return ++this.crlNumber;
  }
  async saveCrl(_c: CrlRecord): Promise<void> {}
  async latestCrl(): Promise<CrlRecord | null> {
    return null;
  }
  async listRevoked(): Promise<RevokedEntry[]> {
    return [];
  }
  async lastStatusChange(): Promise<Date | null> {
    return null;
  }
  async missingCrlEntries(): Promise<Array<RevokedEntry & { issuerId: number }>> {
    return [];
  }
  async setCrlEntries(): Promise<void> {}
  /** init signs each CA's first CRL: nothing is revoked in this store. */
  async crlBuild<T>(_issuerId: number, fn: (s: CrlBuildSession) => Promise<T>): Promise<T | null> {
    return fn({
      nextNumber: async () => ++this.crlNumber,
      entryPages: async function* () {},
      latestBase: async () => null,
      changesSince: async () => [],
      save: async () => {},
    });
  }
  async close(): Promise<void> {}
}
