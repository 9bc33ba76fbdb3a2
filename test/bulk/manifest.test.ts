/**
 * Manifest parsing, pure: CSV with a header and JSON Lines, streamed in small chunks; every bad row
 * rejected with its input line and reason; whole-manifest errors with their line.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { pemEncode } from '../../src/pki/pem.js';
import { ManifestError, parseManifest, type ManifestContext, type ManifestEntry } from '../../src/bulk/manifest.js';
import { makeCsr } from '../../bench/fixtures.js';

const config = loadConfig(path.resolve('ca-config'));
const issuerRoles = new Map(Object.entries(config.settings.issuers).map(([n, i]) => [n, i.role]));

function ctx(over: Partial<ManifestContext> = {}): ManifestContext {
  return { profiles: config.profiles, issuerRoles, defaultProfile: 'camera', keygen: 'device', secrets: false, ...over };
}

/** The text in chunks of `size` characters: records and even characters split across chunks. */
async function* chunks(text: string, size = 7): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function all(text: string, c: ManifestContext = ctx(), size = 7): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  for await (const e of parseManifest(chunks(text, size), c)) out.push(e);
  return out;
}

const rejects = (es: ManifestEntry[]) => es.flatMap((e) => (e.ok ? [] : [e.reject]));
const rows = (es: ManifestEntry[]) => es.flatMap((e) => (e.ok ? [e.row] : []));

const csrPem = (cn: string, key?: crypto.KeyPairKeyObjectResult) => pemEncode('CERTIFICATE REQUEST', makeCsr(cn, key));
const csrB64 = (cn: string) => makeCsr(cn).toString('base64');
/** A CSV field in quotes (a PEM spans lines). */
const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
const spkiB64 = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const spkiPem = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

describe('CSV manifests', () => {
  it('valid rows/fields, MAC lists normalised, CSR inline as PEM (a quoted multi-line field) or base64 DER, lines counted from the header', async () => {
    const text =
      'device_id,serial_number,mac,model,firmware,csr\n' +
      `cam-1,SN-1,AA-BB-CC-DD-EE-01;aabb.ccdd.ee02,X100,2.4.1,"${csrPem('cam-1')}"\n` +
      '\n' +
      `cam-2,,,,,${csrB64('cam-2')}\r\n`;
    const es = await all(text);
    expect(rejects(es)).toEqual([]);
    const [a, b] = rows(es);
    expect(a).toMatchObject({ line: 2, deviceId: 'cam-1', serialNumber: 'SN-1', macs: ['aa:bb:cc:dd:ee:01', 'aa:bb:cc:dd:ee:02'], model: 'X100', firmware: '2.4.1' });
    expect(a!.key.kind).toBe('csr');
    expect(a!.profile.name).toBe('camera');
    // the PEM spans lines 2..N; an empty line; then cam-2
    const pemLines = csrPem('x').split('\n').length - 1;
    expect(b).toMatchObject({ line: 2 + pemLines + 2, deviceId: 'cam-2', serialNumber: null, macs: null });
  });

  it('bad rows/each with its line and reason; the good rows still come through', async () => {
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    // one line per row: CSRs and keys as base64 DER
    const text = [
      'device_id,mac,profile,csr,public_key',
      `ok-1,,,${csrB64('ok-1')},`,
      `ok-1,,,${csrB64('ok-1')},`, // duplicate
      `bad-mac,zz:zz,,,${spkiB64()}`,
      `cn-mismatch,,,${makeCsr('someone-else', other).toString('base64')},`,
      `no-profile,,nosuch,${csrB64('no-profile')},`,
      `sys-profile,,tls-server,${csrB64('sys-profile')},`,
      `no-key,,,,`,
      `both,,,${csrB64('both')},${spkiB64()}`,
      `bad der,,,,`,
      `short-row`,
      `ed-key,,medical-device,,${ed}`,
      `garbage-csr,,,${'A'.repeat(80)},`,
      `ok-2,,,,${q(spkiPem())}`,
    ].join('\n');
    const es = await all(text);
    expect(rows(es).map((r) => [r.line, r.deviceId, r.key.kind])).toEqual([
      [2, 'ok-1', 'csr'],
      [14, 'ok-2', 'spki'],
    ]);
    const byLine = Object.fromEntries(rejects(es).map((r) => [r.line, r]));
    expect(byLine[3]).toEqual({ line: 3, deviceId: 'ok-1', reason: 'duplicate device_id (first at line 2)' });
    expect(byLine[4]!.reason).toBe('malformed MAC address "zz:zz"');
    expect(byLine[5]!.reason).toBe('CSR subject CN=someone-else does not match device_id cn-mismatch');
    expect(byLine[6]!.reason).toBe('unknown profile "nosuch"');
    expect(byLine[7]!.reason).toMatch(/fleetca's own service certificates/);
    expect(byLine[8]!.reason).toMatch(/^no key material/);
    expect(byLine[9]!.reason).toBe('give csr or public_key, not both');
    expect(byLine[10]).toMatchObject({ deviceId: 'bad der', reason: expect.stringMatching(/not a valid device id/) });
    expect(byLine[11]).toMatchObject({ deviceId: null, reason: 'expected 5 fields (the header\'s), found 1' });
    expect(byLine[12]!.reason).toMatch(/Ed25519 is not allowed by profile medical-device/);
    expect(byLine[13]!.reason).toMatch(/CSR/);
    expect(Object.keys(byLine)).toHaveLength(11);
  });

  it('whole-manifest errors/unknown column, no device_id column, an unclosed quote: ManifestError with the line', async () => {
    await expect(all('device_id,colour\nx,red\n')).rejects.toThrow(new ManifestError('unknown column "colour" (known: device_id, serial_number, mac, model, firmware, profile, csr, public_key)', 1));
    await expect(all('mac\naa:bb:cc:dd:ee:ff\n')).rejects.toThrow(/line 1: the header has no device_id column/);
    await expect(all('device_id,model\na,"unclosed\nb,c\n')).rejects.toThrow(ManifestError);
    await expect(all('')).rejects.toThrow(/empty manifest/);
  });

  it('file paths/read through the injected reader, refused without one', async () => {
    const csr = csrPem('file-1');
    const files: Record<string, string> = { 'csrs/file-1.csr': csr };
    const text = 'device_id,csr\nfile-1,csrs/file-1.csr\nfile-2,csrs/missing.csr\n';
    const es = await all(text, ctx({ readFile: (f) => {
      if (!(f in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      return Buffer.from(files[f]!);
    } }));
    expect(rows(es).map((r) => r.deviceId)).toEqual(['file-1']);
    expect(rejects(es)[0]).toMatchObject({ line: 3, reason: 'csr file "csrs/missing.csr" cannot be read: ENOENT' });
    const refused = await all(text);
    expect(rejects(refused)[0]!.reason).toMatch(/file paths are not accepted here/);
  });
});

describe('modes', () => {
  it('server keygen/rows carry no key; the subject is CN + serialNumber; key material is refused', async () => {
    const es = await all(`device_id,serial_number,csr\nsrv-1,SN1,\nsrv-2,,"${csrPem('srv-2')}"\n`, ctx({ keygen: 'server' }));
    const [r] = rows(es);
    expect(r!.key).toEqual({ kind: 'server', subject: [
      { type: 'serialNumber', oid: '2.5.4.5', value: 'SN1' },
      { type: 'CN', oid: '2.5.4.3', value: 'srv-1' },
    ] });
    expect(rejects(es)[0]!.reason).toMatch(/--keygen server makes the keys/);
  });

  it('secrets/rows without key material get a secret only; a profile without secrets and ":" in ids are refused', async () => {
    const es = await all('device_id,profile,serial_number\nsec-1,,\nsec:2,,\nsec-3,manufacturing-idevid,SN3\n', ctx({ secrets: true }));
    expect(rows(es).map((r) => [r.deviceId, r.key.kind])).toEqual([['sec-1', 'none']]);
    expect(rejects(es).map((r) => r.reason)).toEqual([
      'device id contains ":", which HTTP Basic (the secret\'s username) cannot carry',
      'profile manufacturing-idevid does not accept one-time enrollment secrets',
    ]);
  });

  it('IDevID profile/serial_number required; a CSR serialNumber must equal it', async () => {
    const es = await all('device_id,serial_number,profile\nid-1,,manufacturing-idevid\nid-2,SN-2,manufacturing-idevid\n', ctx({ keygen: 'server' }));
    expect(rejects(es)[0]).toMatchObject({ line: 2, reason: expect.stringMatching(/serial_number is required/) });
    expect(rows(es)[0]!.key).toMatchObject({ kind: 'server' });
  });

  it('no profile anywhere/refused with the reason', async () => {
    const es = await all(`device_id,public_key\nx-1,${q(spkiPem())}\n`, ctx({ defaultProfile: undefined }));
    expect(rejects(es)[0]!.reason).toBe('no profile: give a profile column or --profile');
  });
});

describe('JSON Lines manifests', () => {
  it('one object per line/MACs as an array or a string; bad JSON and unknown fields rejected with their line', async () => {
    const text = [
      JSON.stringify({ device_id: 'j-1', mac: ['00:11:22:33:44:55'], csr: csrPem('j-1') }),
      '',
      JSON.stringify({ device_id: 'j-2', mac: '00:11:22:33:44:66;00:11:22:33:44:77', public_key: spkiPem(), serial_number: 1234 }),
      '{not json',
      JSON.stringify({ device_id: 'j-3', colour: 'red' }),
      JSON.stringify(['array']),
      JSON.stringify({ device_id: 'j-4', mac: 5, public_key: spkiPem() }),
    ].join('\r\n');
    const es = await all(text, ctx(), 5);
    expect(rows(es).map((r) => [r.line, r.deviceId, r.macs, r.serialNumber])).toEqual([
      [1, 'j-1', ['00:11:22:33:44:55'], null],
      [3, 'j-2', ['00:11:22:33:44:66', '00:11:22:33:44:77'], '1234'],
    ]);
    expect(rejects(es).map((r) => [r.line, r.reason.split(':')[0]])).toEqual([
      [4, 'not valid JSON'],
      [5, 'unknown field "j-3" (known'.replace('j-3', 'colour')],
      [6, 'not a JSON object'],
      [7, 'mac must be a string or an array of strings'],
    ]);
  });

  it('streams/a large manifest is parsed in constant memory (rows come out before the input ends)', async () => {
    const spki = JSON.stringify(spkiPem()).slice(1, -1).replace(/\\n/g, '\n');
    let produced = 0;
    async function* source(): AsyncGenerator<string> {
      yield 'device_id,public_key\n';
      for (let i = 0; i < 5000; i++) {
        produced++;
        yield `s-${i},"${spki}"\n`;
      }
    }
    let first: number | null = null;
    let n = 0;
    for await (const e of parseManifest(source(), ctx())) {
      if (first === null) first = produced;
      if (!e.ok) throw new Error(e.reject.reason);
      n++;
    }
    expect(n).toBe(5000);
    // the first row came out long before the source was exhausted
    expect(first!).toBeLessThan(1000);
  });
});
