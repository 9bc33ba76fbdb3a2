/**
 * The core's CRL publication and OCSP responder on a real database and a real CA hierarchy (init),
 * with an injected clock. Wire-level checks with openssl live in test/integration/revocation.test.ts.
 */
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { CaError } from '../../src/core/errors.js';
import { loadConfig } from '../../src/config/load.js';
import type { FleetcaConfig } from '../../src/config/schema.js';
import { initHierarchy, SERVICE_KEYS } from '../../src/ca/bootstrap.js';
import { CertificateAuthority } from '../../src/ca/issuance.js';
import type { IssuerRuntime } from '../../src/ca/issuers.js';
import { crlSettingsOf, publishCrls } from '../../src/ca/crl.js';
import { OcspService, ocspSettingsOf } from '../../src/ca/ocsp.js';
import { renewDueResponders } from '../../src/jobs/ocsp-responders.js';
import type { OcspStore } from '../../src/ca/ports.js';
import { decodeCrl } from '../../src/pki/crl-decode.js';
import { decodeOcspResponse, encodeCertId, issuerHashes, type OcspHash } from '../../src/pki/ocsp.js';
import { TAG, encodeExplicit, encodeOctetString, encodeOid, encodeSequence } from '../../src/pki/der.js';
import { OID_OCSP } from '../../src/pki/oids.js';
import { parseSpki } from '../../src/pki/spki.js';
import { InlineCryptoEngine } from '../../src/signing/crypto-pool.js';
import { FileKeyStore } from '../../src/signing/key-store.js';
import { generateKeyPair, spkiOf } from '../../src/signing/keys.js';
import { hexToSerialBytes } from '../../src/ca/serials.js';
import { PgStore } from '../../src/store/pg-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { DAY, T0, at } from './fixtures.js';

const suite = {} as { db: TestDatabase; store: PgStore };
const clock = new FakeClock(T0);
const cryptoEngine = new InlineCryptoEngine();
let tmp: string;
let config: FleetcaConfig;
let ca: CertificateAuthority;
let deviceCa: IssuerRuntime;
let ocsp: OcspService;
const logs: string[] = [];

function withCrl(c: FleetcaConfig, patch: Partial<FleetcaConfig['settings']['crl']>): FleetcaConfig {
  return { ...c, settings: { ...c.settings, crl: { ...c.settings.crl, ...patch } } };
}

beforeAll(async () => {
  suite.db = await createTestDatabase();
  suite.store = await PgStore.open({ connectionString: suite.db.connectionString });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'fleetca-revpub-'));
  config = withCrl(loadConfig(path.resolve('ca-config')), { shards: 2 });
  const keys = new FileKeyStore(tmp, 'test passphrase');
  const { store } = suite;
  const result = await initHierarchy({ config, store, crypto: cryptoEngine, keys, clock, publicUrl: 'http://pki.test:8080' });
  ca = new CertificateAuthority({ config, store, crypto: cryptoEngine, issuers: result.issuers, clock });
  deviceCa = result.issuers.get('device-ca')!;
  const responder = result.services.find((s) => s.name === SERVICE_KEYS.ocsp('device-ca'))!;
  ocsp = new OcspService({ store, clock, settings: ocspSettingsOf(config.settings.ocsp), log: (_l, _o, m) => logs.push(m) }, [
    { issuer: deviceCa, certDer: responder.cert.der, signer: await cryptoEngine.addKey('ocsp', keys.load(responder.keyName)!) },
  ]);
});

afterAll(async () => {
  await suite.store?.close();
  await suite.db?.drop();
  rmSync(tmp, { recursive: true, force: true });
});

let devices = 0;
async function issueDevice(): Promise<{ serial: string; der: Buffer }> {
  const id = `pub-dev-${++devices}`;
  await suite.store.addDevice({ id, profile: 'camera' }, clock.now());
  const kp = generateKeyPair('P-256');
  const spki = spkiOf(kp.publicKey);
  const c = await ca.issueForPublicKey({ profile: 'camera', deviceId: id, subject: [{ type: 'CN', oid: '2.5.4.3', value: id }], sans: [], spkiDer: spki, key: parseSpki(spki).key, popMethod: 'factory', actor: 'test', via: 'test' });
  return { serial: c.serial, der: c.der };
}

const deps = () => ({ store: suite.store, clock, settings: crlSettingsOf(config) });

/** The serials a CRL lists, in the store's form (decodeCrl drops leading zero digits). */
function listed(der: Buffer): Set<string> {
  return new Set([...decodeCrl(der).revokedSerials].map((x) => (x.length % 2 ? `0${x}` : x)));
}

function verifies(der: Buffer, issuer: IssuerRuntime): boolean {
  const crl = decodeCrl(der);
  return crypto.verify('sha256', crl.tbsDer, crypto.createPublicKey({ key: issuer.spkiDer, format: 'der', type: 'spki' }), crl.signature);
}

/** The text openssl would show is checked in the integration test; here, the bytes we expect. */
function hasExtension(der: Buffer, oid: string, critical: boolean): boolean {
  const needle = Buffer.concat([encodeOid(oid), ...(critical ? [Buffer.from([TAG.BOOLEAN, 1, 0xff])] : [])]);
  return der.includes(needle);
}

describe('CRL publication', () => {
  it('base, then a change: the full CRL lists it, the delta against the base lists it, numbers increase', async () => {
    const base = await publishCrls(deps(), deviceCa, { base: true, actor: 'test' });
    expect(base!.full.entries).toBe(0);
    expect(base!.delta!.baseNumber).toBe(base!.full.number);
    expect(hasExtension(base!.full.der, '2.5.29.46', false)).toBe(true); // Freshest CRL

    const a = await issueDevice();
    clock.advance(60_000);
    await ca.revoke(a.serial, 'keyCompromise', 'test');
    clock.advance(1000);
    const pub = (await publishCrls(deps(), deviceCa, { base: false, actor: 'test' }))!;
    expect(pub.full.number > base!.delta!.number).toBe(true);
    expect(listed(pub.full.der)).toEqual(new Set([a.serial]));
    expect(verifies(pub.full.der, deviceCa)).toBe(true);
    expect(pub.delta!.baseNumber).toBe(base!.full.number);
    expect(listed(pub.delta!.der)).toEqual(new Set([a.serial]));
    expect(hasExtension(pub.delta!.der, '2.5.29.27', true)).toBe(true); // Delta CRL Indicator, critical
    expect(verifies(pub.delta!.der, deviceCa)).toBe(true);
    const stored = await suite.store.latestCrl('device-ca', 'delta');
    // stored through binary COPY: every field reads back as written
    expect(stored).toEqual({ issuerId: deviceCa.record.id, number: pub.delta!.number, kind: 'delta', shard: 0, thisUpdate: pub.delta!.thisUpdate, nextUpdate: pub.delta!.nextUpdate, der: pub.delta!.der });
    const { rows } = await suite.store.pool.query('SELECT base, base_number::text AS b, entries FROM crls WHERE issuer_id = $1 AND number = $2', [deviceCa.record.id, pub.delta!.number.toString()]);
    expect(rows).toEqual([{ base: false, b: base!.full.number.toString(), entries: 1 }]);
  });

  it('a released hold leaves the full CRL and appears in the delta as removeFromCRL', async () => {
    const h = await issueDevice();
    await ca.revoke(h.serial, 'certificateHold', 'test');
    clock.advance(1000);
    const held = (await publishCrls(deps(), deviceCa, { base: false, actor: 'test' }))!;
    expect(listed(held.full.der).has(h.serial)).toBe(true);
    clock.advance(1000);
    await ca.release(h.serial, 'test');
    const pub = (await publishCrls(deps(), deviceCa, { base: false, actor: 'test' }))!;
    expect(listed(pub.full.der).has(h.serial)).toBe(false);
    expect(listed(pub.delta!.der).has(h.serial)).toBe(true);
    // reasonCode ENUMERATED 8 (removeFromCRL) is in the delta and nowhere in the full CRL
    const removeFromCrl = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, 0x08]);
    expect(pub.delta!.der.includes(removeFromCrl)).toBe(true);
    expect(pub.full.der.includes(removeFromCrl)).toBe(false);
  });

  it('shards: the CDP names the shard fixed at issuance; each shard CRL lists its own and has a critical IDP', async () => {
    const certs = [];
    for (let i = 0; i < 6; i++) certs.push(await issueDevice());
    for (const c of certs) await ca.revoke(c.serial, 'superseded', 'test');
    const pub = (await publishCrls(deps(), deviceCa, { base: false, actor: 'test' }))!;
    expect(pub.shards.map((s) => s.shard)).toEqual([1, 2]);
    for (const c of certs) {
      const shard = (hexToSerialBytes(c.serial).readUInt16BE(hexToSerialBytes(c.serial).length - 2) % 2) + 1;
      expect(c.der.includes(Buffer.from(`http://pki.test:8080/crl/device-ca-${shard}.crl`))).toBe(true);
      expect(listed(pub.shards[shard - 1]!.der).has(c.serial)).toBe(true);
      expect(listed(pub.shards[2 - shard]!.der).has(c.serial)).toBe(false);
    }
    for (const s of pub.shards) {
      expect(hasExtension(s.der, '2.5.29.28', true)).toBe(true); // Issuing Distribution Point, critical
      expect(s.der.includes(Buffer.from(`http://pki.test:8080/crl/device-ca-${s.shard}.crl`))).toBe(true);
      expect(verifies(s.der, deviceCa)).toBe(true);
    }
    expect(hasExtension(pub.full.der, '2.5.29.28', true)).toBe(false);
    expect(listed(pub.full.der).size).toBeGreaterThanOrEqual(certs.length);
  });

  it('an expired revoked certificate stays listed one CRL period after its notAfter, then leaves', async () => {
    const c = await issueDevice();
    await ca.revoke(c.serial, 'keyCompromise', 'test');
    const notAfter = (await suite.store.getCertificate(c.serial))!.notAfter;
    clock.set(new Date(notAfter.getTime() + config.settings.crl.nextUpdate - 1000));
    expect(listed((await publishCrls(deps(), deviceCa, { base: true, actor: 'test' }))!.full.der).has(c.serial)).toBe(true);
    clock.set(new Date(notAfter.getTime() + config.settings.crl.nextUpdate + 1000));
    expect(listed((await publishCrls(deps(), deviceCa, { base: true, actor: 'test' }))!.full.der).has(c.serial)).toBe(false);
    clock.set(T0);
  });
});

/** An OCSPRequest for the given CertIDs, with an optional nonce (RFC 6960 §4.1.1). */
function ocspRequest(certIds: Buffer[], nonce?: Buffer): Buffer {
  const list = encodeSequence(...certIds.map((id) => encodeSequence(id)));
  const exts = nonce ? [encodeExplicit(2, encodeSequence(encodeSequence(encodeOid(OID_OCSP.nonce), encodeOctetString(encodeOctetString(nonce)))))] : [];
  return encodeSequence(encodeSequence(list, ...exts));
}

function certIdFor(serial: string, hash: OcspHash = 'sha1', issuer = deviceCa): Buffer {
  const h = issuerHashes(issuer.subjectDer, issuer.spkiDer)[hash];
  return encodeCertId(hash, h.nameHash, h.keyHash, hexToSerialBytes(serial));
}

describe('OCSP responder', () => {
  it('good → stored/cache; a revocation evicted by notification answers revoked at once', async () => {
    clock.set(at(DAY));
    const c = await issueDevice();
    const first = await ocsp.respond(ocspRequest([certIdFor(c.serial)]));
    expect(first).toMatchObject({ status: 'successful', source: 'signed' });
    expect(decodeOcspResponse(first.der).basic!.responses[0]!.status).toEqual({ type: 'good' });
    await ocsp.flush();
    expect((await ocsp.respond(ocspRequest([certIdFor(c.serial)]))).source).toBe('cache');

    await ca.revoke(c.serial, 'keyCompromise', 'test');
    ocsp.evict(c.serial); // what the LISTEN handler does on fleetca_status
    const after = await ocsp.respond(ocspRequest([certIdFor(c.serial)]));
    expect(decodeOcspResponse(after.der).basic!.responses[0]!.status).toMatchObject({ type: 'revoked', reason: 'keyCompromise' });
  });

  it('a repeated request is answered by its bytes; never after an eviction, LRU removal, evictAll or its freshness margin', async () => {
    clock.set(at(DAY));
    const signerOf = () => (ocsp as unknown as { responders: Array<{ signer: never }> }).responders[0]!.signer;
    const small = new OcspService({ store: suite.store, clock, settings: { ...ocspSettingsOf(config.settings.ocsp), cacheEntries: 2 }, log: () => undefined }, [
      { issuer: deviceCa, certDer: ocsp.responderCertificates().get('device-ca')!.certDer, signer: signerOf() },
    ]);
    const indexed = () => (small as unknown as { byRequest: Map<string, unknown> }).byRequest.size;
    const [a, b, c] = [await issueDevice(), await issueDevice(), await issueDevice()];
    const reqA = ocspRequest([certIdFor(a.serial)]);
    const statusOf = async (req: Buffer) => decodeOcspResponse((await small.respond(req)).der).basic!.responses[0]!.status;
    expect((await small.respond(reqA)).source).not.toBe('cache'); // read and signed, then cached
    expect((await small.respond(reqA)).source).toBe('cache'); // from the cache, and now indexed by its bytes
    expect(indexed()).toBe(1);
    const again = small.respond(reqA);
    expect(again).not.toBeInstanceOf(Promise); // the hot path answers synchronously
    expect((again as { source: string }).source).toBe('cache');

    // a status change: the indexed bytes must not answer the old status
    await ca.revoke(a.serial, 'keyCompromise', 'test');
    small.evict(a.serial);
    expect(await statusOf(reqA)).toMatchObject({ type: 'revoked', reason: 'keyCompromise' });
    await small.respond(reqA); // cached and indexed again (revoked)
    expect((await small.respond(reqA)).source).toBe('cache');

    // LRU: two other serials push A out of a 2-entry cache; its bytes no longer answer from memory
    for (const x of [b, c]) await small.respond(ocspRequest([certIdFor(x.serial)]));
    expect(indexed()).toBe(0); // A's bytes left the index with A's entry
    expect((await small.respond(reqA)).source).not.toBe('cache');

    // evictAll (lost notification channel) forgets the index too
    await small.respond(reqA);
    expect((await small.respond(reqA)).source).toBe('cache');
    small.evictAll();
    expect(indexed()).toBe(0);
    expect((await small.respond(reqA)).source).not.toBe('cache');

    // the freshness margin: a minute before nextUpdate the indexed answer is not served
    expect((await small.respond(reqA)).source).toBe('cache');
    const next = (await small.respond(reqA)).nextUpdate!;
    clock.set(new Date(next.getTime() - 30_000));
    expect((await small.respond(reqA)).source).not.toBe('cache');
    clock.set(at(DAY));
  });

  it('presign stores responses for live certificates; a new instance answers from the database', async () => {
    const c = await issueDevice();
    const n = await ocsp.presign();
    expect(n).toBeGreaterThan(0);
    const fresh = new OcspService({ store: suite.store, clock, settings: ocspSettingsOf(config.settings.ocsp), log: () => undefined }, [
      { issuer: deviceCa, certDer: ocsp.responderCertificates().get('device-ca')!.certDer, signer: (ocsp as unknown as { responders: Array<{ signer: never }> }).responders[0]!.signer },
    ]);
    const a = await fresh.respond(ocspRequest([certIdFor(c.serial)]));
    expect(a.source).toBe('stored');
    expect(await ocsp.presign()).toBe(0);
  });

  it('a status change is re-signed and stored at once (refreshSoon), not at the next pre-signing pass', async () => {
    const c = await issueDevice();
    await ocsp.presign();
    await ca.revoke(c.serial, 'cessationOfOperation', 'test');
    expect((await suite.store.ocspStates([c.serial]))[0]!.stored).toBeNull(); // the change deleted it
    ocsp.evict(c.serial);
    ocsp.refreshSoon(c.serial);
    await ocsp.flush();
    const stored = (await suite.store.ocspStates([c.serial]))[0]!.stored!;
    expect(decodeOcspResponse(stored.der).basic!.responses[0]!.status).toMatchObject({ type: 'revoked', reason: 'cessationOfOperation' });
    const a = await ocsp.respond(ocspRequest([certIdFor(c.serial)]));
    expect(a.source).toBe('stored');
  });

  it('held → revoked/certificateHold; unknown serial → unknown; several CertIDs and a nonce → one live response echoing it', async () => {
    const c = await issueDevice();
    await ca.revoke(c.serial, 'certificateHold', 'test');
    ocsp.evict(c.serial);
    const nonce = crypto.randomBytes(16);
    const a = await ocsp.respond(ocspRequest([certIdFor(c.serial), certIdFor('0a0b0c0d', 'sha256')], nonce));
    expect(a).toMatchObject({ status: 'successful', source: 'live', live: true });
    const basic = decodeOcspResponse(a.der).basic!;
    expect(basic.responses.map((r) => r.status)).toEqual([{ type: 'revoked', revokedAt: expect.any(Date), reason: 'certificateHold' }, { type: 'unknown' }]);
    expect(basic.nonce).toEqual(encodeOctetString(nonce));
    expect(basic.certs).toEqual([ocsp.responderCertificates().get('device-ca')!.certDer]);
  });

  it('garbage → malformedRequest; another issuer → unauthorized; database down → tryLater; each logged', async () => {
    logs.length = 0;
    expect((await ocsp.respond(Buffer.from('not der'))).status).toBe('malformedRequest');
    const root = [...ca.issuers.values()].find((i) => i.record.role === 'root')!;
    expect((await ocsp.respond(ocspRequest([certIdFor('01', 'sha1', root)]))).status).toBe('unauthorized');
    const down: OcspStore = {
      ocspStates: () => Promise.reject(new CaError('unavailable', 'database unreachable')),
      saveOcspResponses: () => Promise.reject(new CaError('unavailable', 'database unreachable')),
      ocspDue: () => Promise.reject(new CaError('unavailable', 'database unreachable')),
    };
    const offline = new OcspService({ store: down, clock, settings: ocspSettingsOf(config.settings.ocsp), log: (_l, _o, m) => logs.push(m) }, [
      { issuer: deviceCa, certDer: ocsp.responderCertificates().get('device-ca')!.certDer, signer: (ocsp as unknown as { responders: Array<{ signer: never }> }).responders[0]!.signer },
    ]);
    expect((await offline.respond(ocspRequest([certIdFor('0123')]))).status).toBe('tryLater');
    expect(logs).toHaveLength(3);
  });
});

describe('delegated responder renewal', () => {
  it('replaces a responder certificate within renewBefore of its notAfter, and answers with the new one at once', async () => {
    const saved: string[] = [];
    const renewDeps = {
      ca,
      ocsp,
      clock,
      profile: config.settings.systemProfiles.ocspResponder,
      renewBeforeMs: config.settings.ocsp.responderRenewBefore,
      save: (issuerName: string) => void saved.push(issuerName),
      addKey: (id: string, key: crypto.KeyObject) => cryptoEngine.addKey(id, key),
      log: () => undefined,
    };
    const before = ocsp.responderCertificates().get('device-ca')!;
    clock.set(new Date(before.notAfter.getTime() - config.settings.ocsp.responderRenewBefore - DAY));
    expect(await renewDueResponders(renewDeps)).toEqual([]);
    clock.set(new Date(before.notAfter.getTime() - config.settings.ocsp.responderRenewBefore + DAY));
    expect(await renewDueResponders(renewDeps)).toEqual(['device-ca']);
    expect(saved).toEqual(['device-ca']);
    const after = ocsp.responderCertificates().get('device-ca')!;
    expect(after.certDer.equals(before.certDer)).toBe(false);
    expect(after.notAfter.getTime()).toBeGreaterThan(before.notAfter.getTime());
    const c = await issueDevice();
    const a = await ocsp.respond(ocspRequest([certIdFor(c.serial)]));
    expect(decodeOcspResponse(a.der).basic!.certs).toEqual([after.certDer]);
    expect(await renewDueResponders(renewDeps)).toEqual([]);
    clock.set(T0);
  });
});
