import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { CertificateAuthority } from '../../src/ca/issuance.js';
import { InlineCryptoEngine } from '../../src/signing/crypto-pool.js';
import { revokeDueSuperseded } from '../../src/jobs/supersede-revoker.js';
import type { IssuerRecord } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function issued(deviceId: string, profile = 'camera'): Promise<string> {
  const intent = { ...intentFor(randomSerial(), issuer.id, deviceId), profile };
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
  await store.commitCertificate({ ...certFor(intent, { notAfter: at(365 * DAY) }), profile }, auditFor('certificate.issued', intent.serial));
  return intent.serial;
}

describe('revoking superseded certificates after their grace period', () => {
  it('revokes (reason superseded) only once the grace ended, once, and skips one revoked meanwhile', async () => {
    const clock = new FakeClock(T0);
    const ca = new CertificateAuthority({ config: loadConfig(path.resolve('ca-config')), store, crypto: new InlineCryptoEngine(), issuers: new Map(), clock });
    const logs: unknown[] = [];
    const deps = { ca, store, clock, log: (o: Record<string, unknown>) => logs.push(o) };
    await store.addDevice({ id: 'sup-job' }, T0);
    const [old1, old2] = [await issued('sup-job'), await issued('sup-job')];
    const current = await issued('sup-job');
    const superseded = await store.supersede({ deviceId: 'sup-job', profile: 'camera', newSerial: current, at: T0, revokeAt: at(7 * DAY) }, auditFor('certificate.superseded', 'sup-job'));
    expect(superseded.sort()).toEqual([old1, old2].sort());
    // an admin revokes one of them before the grace ends
    await ca.revoke(old2, 'keyCompromise', 'test');

    clock.set(at(7 * DAY - 1));
    expect(await revokeDueSuperseded(deps)).toEqual([]);
    clock.set(at(7 * DAY));
    expect(await revokeDueSuperseded(deps)).toEqual([old1]);
    expect(await revokeDueSuperseded(deps)).toEqual([]);

    expect(await store.getCertificate(old1)).toMatchObject({ status: 'revoked', revocationReason: 'superseded', supersededBy: current });
    expect(await store.getCertificate(old2)).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
    expect(await store.getCertificate(current)).toMatchObject({ status: 'valid', supersededBy: null });
    expect(logs).toEqual([{ revoked: 1 }]);
  });
});
