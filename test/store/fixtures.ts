/** Builders for store tests. DER bytes are opaque random buffers: the store never parses them. */
import { createHash, randomBytes } from 'node:crypto';
import type { AuditEntry, IssuanceIntent, IssuerRecord, NewCertificate } from '../../src/ca/ports.js';
import { afterAll, beforeAll } from 'vitest';
import { PgStore } from '../../src/store/pg-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

export const T0 = new Date('2030-01-01T00:00:00.000Z');
export const DAY = 86_400_000;

export function at(ms: number): Date {
  return new Date(T0.getTime() + ms);
}

/** A serial as the pipeline makes them: prefix 0x01–0x7f + 128 random bits, lowercase hex. */
export function randomSerial(): string {
  return (0x01 + Math.floor(Math.random() * 0x7f)).toString(16).padStart(2, '0') + randomBytes(16).toString('hex');
}

export function issuerInput(name = 'device-ca'): Omit<IssuerRecord, 'id'> {
  return {
    name,
    role: 'device',
    certDer: randomBytes(400),
    ski: randomBytes(20),
    notBefore: at(-DAY),
    notAfter: at(3650 * DAY),
    active: true,
  };
}

export async function seedIssuer(store: PgStore, name = 'device-ca'): Promise<IssuerRecord> {
  return store.upsertIssuer(issuerInput(name));
}

export function intentFor(serial: string, issuerId: number, deviceId: string | null = null, createdAt = T0): IssuanceIntent {
  return {
    serial,
    issuerId,
    deviceId,
    profile: 'device',
    tbsDer: randomBytes(300),
    request: { via: 'test', csrSha256: randomBytes(32).toString('hex') },
    createdAt,
  };
}

export function certFor(intent: IssuanceIntent, opts: { spki?: Buffer; notAfter?: Date; der?: Buffer } = {}): NewCertificate {
  const der = opts.der ?? randomBytes(600);
  return {
    serial: intent.serial,
    issuerId: intent.issuerId,
    deviceId: intent.deviceId,
    profile: intent.profile,
    subject: `CN=${intent.deviceId ?? 'ca'}`,
    sans: intent.deviceId ? [{ type: 'dns', value: `${intent.deviceId}.devices.example` }] : [],
    spkiSha256: opts.spki ?? randomBytes(32),
    fingerprintSha256: createHash('sha256').update(der).digest(),
    notBefore: intent.createdAt,
    notAfter: opts.notAfter ?? new Date(intent.createdAt.getTime() + 365 * DAY),
    der,
    popMethod: 'csr',
  };
}

export function auditFor(action: string, target: string, when = T0): AuditEntry {
  return { at: when, actor: 'test', action, target, details: { n: 1 } };
}

/**
 * A fresh migrated database, a PgStore on it and one seeded issuer for the suite, torn down after
 * it. Read the fields inside tests and hooks (they are set in beforeAll).
 */
export function useTestStore(): { db: TestDatabase; store: PgStore; issuer: IssuerRecord } {
  const ctx = {} as { db: TestDatabase; store: PgStore; issuer: IssuerRecord };
  beforeAll(async () => {
    ctx.db = await createTestDatabase();
    ctx.store = await PgStore.open({ connectionString: ctx.db.connectionString });
    ctx.issuer = await seedIssuer(ctx.store);
  });
  afterAll(async () => {
    await ctx.store?.close();
    await ctx.db?.drop();
  });
  return ctx;
}
