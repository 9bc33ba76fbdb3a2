/**
 * The batch output folder: the journal survives a torn last line, later rows win, completion writes
 * manifest.csv (in the order given), rejects.csv and SHA256SUMS (sha256sum -c), drops the journal
 * and temporary files of a killed run; modes.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BatchOutput, JOURNAL_FILE } from '../../src/bulk/output.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const fresh = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'fleetca-out-'));
  dirs.push(d);
  return path.join(d, 'out');
};
const row = (id: string, serial = 'AB', secret = '') => ({ deviceId: id, serial, fingerprint: 'ff', notAfter: '2030-01-01T00:00:00.000Z', secret });

describe('batch output folder', () => {
  it('journal/a torn last line is cut off; later rows of a device win; rows reach the file only on flush', async () => {
    const root = fresh();
    const o = new BatchOutput(root, true);
    await o.prepare(true);
    expect(statSync(root).mode & 0o777).toBe(0o700);
    o.openJournal();
    o.journal(row('a', '01', 's1'));
    o.journal(row('b', '02', 's2'));
    expect(readFileSync(path.join(root, JOURNAL_FILE), 'utf8').split('\n')).toHaveLength(2); // header only
    o.flushJournal();
    o.journal(row('a', '03', 's3'));
    o.closeJournal();
    expect(statSync(path.join(root, JOURNAL_FILE)).mode & 0o777).toBe(0o600);
    appendFileSync(path.join(root, JOURNAL_FILE), 'c,04,ff,2030-01-01T00:00:00.000Z,trunc'); // killed mid-write
    const back = await new BatchOutput(root, true).readCompleted();
    expect([...back.keys()]).toEqual(['a', 'b']);
    expect(back.get('a')).toEqual(row('a', '03', 's3'));
    expect(readFileSync(path.join(root, JOURNAL_FILE), 'utf8').endsWith('\n')).toBe(true);
  });

  it('device folder/made 0700 ahead of the files; an existing one is kept with its files; a missing devices/ is made too', async () => {
    const root = fresh();
    const o = new BatchOutput(root, false);
    await o.prepare(true);
    await o.makeDeviceFolder('dev-1');
    expect(statSync(path.join(root, 'devices/dev-1')).mode & 0o777).toBe(0o700);
    await o.write(o.rel('dev-1', 'cert.pem'), 'CERT\n', 0o644);
    await o.makeDeviceFolder('dev-1'); // a resumed run
    expect(readFileSync(path.join(root, 'devices/dev-1/cert.pem'), 'utf8')).toBe('CERT\n');
    rmSync(path.join(root, 'devices'), { recursive: true });
    await o.makeDeviceFolder('dev-2');
    expect(statSync(path.join(root, 'devices/dev-2')).isDirectory()).toBe(true);
    await expect(o.makeDeviceFolder('../escape')).rejects.toThrow(/cannot be a folder name/);
  });

  it('finish/manifest.csv (0600 with secrets), rejects.csv, SHA256SUMS over every file; journal and stray temporary files gone', async () => {
    const root = fresh();
    const o = new BatchOutput(root, true);
    await o.prepare(true);
    o.openJournal();
    await o.write(o.rel('dev-1', 'cert.pem'), 'CERT\n', 0o644);
    await o.write(o.rel('dev-1', 'key.pem'), 'KEY\n', 0o600, true);
    writeFileSync(path.join(root, 'devices/dev-1/key.pem.abc.tmp'), 'half');
    writeFileSync(path.join(root, 'devices/dev-1/extra.txt'), 'not written by this process');
    await o.finish([o.line(row('dev-1', '0A', 'sec'))], [{ line: 3, deviceId: 'bad,id', reason: 'duplicate device_id "x"' }]);
    expect(existsSync(path.join(root, JOURNAL_FILE))).toBe(false);
    expect(existsSync(path.join(root, 'devices/dev-1/key.pem.abc.tmp'))).toBe(false);
    expect(statSync(path.join(root, 'manifest.csv')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(root, 'devices/dev-1/key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(root, 'manifest.csv'), 'utf8')).toBe('device_id,serial,sha256_fingerprint,not_after,secret\ndev-1,0A,ff,2030-01-01T00:00:00.000Z,sec\n');
    expect(readFileSync(path.join(root, 'rejects.csv'), 'utf8')).toBe('line,device_id,reason\n3,"bad,id","duplicate device_id ""x"""\n');
    const sums = readFileSync(path.join(root, 'SHA256SUMS'), 'utf8');
    expect(sums.trim().split('\n').map((l) => l.split('  ')[1])).toEqual(['devices/dev-1/cert.pem', 'devices/dev-1/extra.txt', 'devices/dev-1/key.pem', 'manifest.csv', 'rejects.csv']);
    const r = spawnSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('a new batch/refuses a non-empty folder; a resumed one takes it as it is', async () => {
    const root = fresh();
    await new BatchOutput(root, false).prepare(true);
    writeFileSync(path.join(root, 'x'), '');
    await expect(new BatchOutput(root, false).prepare(true)).rejects.toThrow(/not empty/);
    await new BatchOutput(root, false).prepare(false);
  });
});
