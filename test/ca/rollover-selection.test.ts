/**
 * Which CA issues for a lineage across a rollover (pure): the latest activation that has come; a
 * scheduled successor waits for its time; a clock jumping backwards never hands issuance back to
 * the previous CA; expired CAs drop out. And the NAC trust bundle: every unexpired device CA (both
 * during an overlap) and the root, never the manufacturing CA.
 */
import { describe, expect, it } from 'vitest';
import type { IssuerRecord } from '../../src/ca/ports.js';
import { currentIssuer, lineageIssuers, scheduledIssuer } from '../../src/ca/issuers.js';
import { trustBundle } from '../../src/ca/trust-bundle.js';

const H = 3600_000;
const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (h: number) => new Date(T0 + h * H);
function ca(name: string, role: IssuerRecord['role'], notBefore: number, opts: { lineage?: string; activates?: number; notAfter?: number } = {}): { record: IssuerRecord } {
  return {
    record: {
      id: 0,
      name,
      role,
      certDer: Buffer.from(name),
      ski: Buffer.alloc(20),
      notBefore: at(notBefore),
      notAfter: at(opts.notAfter ?? 100_000),
      active: true,
      lineage: opts.lineage ?? name,
      activatesAt: at(opts.activates ?? notBefore),
    },
  };
}

const root = ca('root', 'root', 0);
const ca1 = ca('device-ca', 'device', 0);
const ca2 = ca('device-ca-2', 'device', 10, { lineage: 'device-ca' });
const ca3 = ca('device-ca-3', 'device', 20, { lineage: 'device-ca', activates: 30 });
const mfg = ca('manufacturing-ca', 'manufacturing', 0);
const all = [root, ca1, ca2, ca3, mfg];
const names = (xs: Array<{ record: IssuerRecord }>) => xs.map((x) => x.record.name);

describe('issuer selection across rollovers', () => {
  it('before any rollover CA 1; after an immediate one CA 2, with CA 1 kept for the overlap', () => {
    expect(currentIssuer([root, ca1], 'device-ca', at(5))!.record.name).toBe('device-ca');
    expect(currentIssuer(all, 'device-ca', at(15))!.record.name).toBe('device-ca-2');
    expect(names(lineageIssuers([root, ca1, ca2], 'device-ca', at(15)))).toEqual(['device-ca-2', 'device-ca']);
  });

  it('a scheduled CA is announced but does not issue before its time; then it does', () => {
    expect(scheduledIssuer(all, 'device-ca', at(25))!.record.name).toBe('device-ca-3');
    expect(currentIssuer(all, 'device-ca', at(25))!.record.name).toBe('device-ca-2');
    expect(names(lineageIssuers(all, 'device-ca', at(25)))).toEqual(['device-ca-2', 'device-ca', 'device-ca-3']);
    expect(currentIssuer(all, 'device-ca', at(30))!.record.name).toBe('device-ca-3');
    expect(scheduledIssuer(all, 'device-ca', at(30))).toBeNull();
  });

  it('a clock jumping back before the immediate rollover keeps CA 2 issuing', () => {
    expect(currentIssuer([root, ca1, ca2], 'device-ca', at(9))!.record.name).toBe('device-ca-2');
  });

  it('an expired CA leaves the lineage', () => {
    const old = ca('device-ca', 'device', 0, { notAfter: 12 });
    expect(names(lineageIssuers([old, ca2], 'device-ca', at(13)))).toEqual(['device-ca-2']);
  });

  it('trust bundle: both device CAs during the overlap (newest first), then the root; never manufacturing; not expired ones', () => {
    expect(trustBundle([root, ca1, ca2, mfg].map((x) => x.record), at(15)).map((r) => r.name)).toEqual(['device-ca-2', 'device-ca', 'root']);
    const old = ca('device-ca', 'device', 0, { notAfter: 12 });
    expect(trustBundle([root.record, old.record, ca2.record, mfg.record], at(13)).map((r) => r.name)).toEqual(['device-ca-2', 'root']);
  });
});
