import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEmbeddedCluster, type EmbeddedCluster } from '../../src/store/embedded.js';

const logs: string[] = [];
const log = (m: string) => logs.push(m);

function postmasterPid(dataDir: string): number | null {
  const file = path.join(dataDir, 'pg', 'postmaster.pid');
  if (!existsSync(file)) return null;
  return Number(readFileSync(file, 'utf8').split('\n')[0]);
}

async function canQuery(c: EmbeddedCluster): Promise<boolean> {
  const client = new pg.Client(c.connectionConfig);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('embedded cluster', () => {
  let dataDir: string;
  const open: EmbeddedCluster[] = [];
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-embedded-'));
    logs.length = 0;
  });
  afterEach(async () => {
    for (const c of open.splice(0)) await c.release().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('second open on one dir → joins the running cluster; its release leaves it running; the first release stops it', async () => {
    const first = await openEmbeddedCluster(dataDir, log);
    open.push(first);
    expect(first.startedHere).toBe(true);
    expect(first.connectionConfig.database).toBe('fleetca');
    const pid = postmasterPid(dataDir);
    expect(pid).toBeGreaterThan(0);

    const second = await openEmbeddedCluster(dataDir, log);
    open.push(second);
    expect(second.startedHere).toBe(false);
    expect(second.connectionConfig).toEqual(first.connectionConfig);

    await second.release();
    expect(postmasterPid(dataDir)).toBe(pid);
    expect(await canQuery(first)).toBe(true);

    await first.release();
    expect(postmasterPid(dataDir)).toBeNull();
    expect(await canQuery(first)).toBe(false);
  });

  it('fresh dir → socket-only cluster with fsync on, trust only on the local socket, files private', async () => {
    const c = await openEmbeddedCluster(dataDir, log);
    open.push(c);
    const client = new pg.Client(c.connectionConfig);
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'listen_addresses', 'full_page_writes')",
      );
      expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
        fsync: 'on',
        full_page_writes: 'on',
        listen_addresses: '',
        synchronous_commit: 'on',
      });
      const hba = await client.query<{ type: string; auth_method: string }>('SELECT type, auth_method FROM pg_hba_file_rules');
      expect(hba.rows).toEqual([{ type: 'local', auth_method: 'trust' }]);
    } finally {
      await client.end();
    }
    expect(c.connectionConfig.host).toBe(path.join(dataDir, 'pg-socket'));
    expect(readFileSync(path.join(dataDir, 'pg-port'), 'utf8').trim()).toBe('5432');
    const { statSync } = await import('node:fs');
    expect(statSync(path.join(dataDir, 'pg-socket')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dataDir, 'pg')).mode & 0o777).toBe(0o700);
  });

  /** The scheduling policy of a process (field 41 of /proc/<pid>/stat: 0 SCHED_OTHER, 3 SCHED_BATCH). */
  const policyOf = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[38]);

  it.runIf(process.platform === 'linux')('the postmaster and the backends it forks run as SCHED_BATCH; opting out starts it with the default policy', async () => {
    const c = await openEmbeddedCluster(dataDir, log);
    open.push(c);
    const client = new pg.Client(c.connectionConfig);
    await client.connect();
    try {
      const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      expect([policyOf(postmasterPid(dataDir)!), policyOf(backend)]).toEqual([3, 3]);
      // fleetca's own process is left alone
      expect(policyOf(process.pid)).toBe(0);
    } finally {
      await client.end();
    }
    await open.pop()!.release();

    const plain = await openEmbeddedCluster(dataDir, log, { batchScheduling: false });
    open.push(plain);
    expect(plain.startedHere).toBe(true);
    expect(policyOf(postmasterPid(dataDir)!)).toBe(0);
  });

  it('two opens racing on a fresh dir → one cluster, exactly one of them started it', async () => {
    const [a, b] = await Promise.all([openEmbeddedCluster(dataDir, log), openEmbeddedCluster(dataDir, log)]);
    open.push(a, b);
    expect([a.startedHere, b.startedHere].filter(Boolean)).toHaveLength(1);
    expect(await canQuery(a)).toBe(true);
    await a.release();
    await b.release();
    expect(postmasterPid(dataDir)).toBeNull();
  });

  it('two opens racing on a stopped cluster → the loser of the lock file waits and joins', async () => {
    const first = await openEmbeddedCluster(dataDir, log);
    await first.release();
    const all = await Promise.all([1, 2, 3].map(() => openEmbeddedCluster(dataDir, log)));
    open.push(...all);
    expect(all.filter((c) => c.startedHere)).toHaveLength(1);
    for (const c of all) await c.release();
    expect(postmasterPid(dataDir)).toBeNull();
  });

  it('release while another client is connected → left running for it', async () => {
    const c = await openEmbeddedCluster(dataDir, log);
    open.push(c);
    const client = new pg.Client(c.connectionConfig);
    await client.connect();
    try {
      await c.release();
      expect(postmasterPid(dataDir)).not.toBeNull();
      expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
    // the next handle to be released turns the lights off
    const again = await openEmbeddedCluster(dataDir, log);
    expect(again.startedHere).toBe(false);
    await again.release();
    expect(postmasterPid(dataDir)).toBeNull();
  });

  it('cluster stopped underneath a handle → the next open starts it again', async () => {
    const a = await openEmbeddedCluster(dataDir, log);
    open.push(a);
    const pid = postmasterPid(dataDir)!;
    process.kill(pid, 'SIGINT');
    while (postmasterPid(dataDir) !== null) await new Promise((r) => setTimeout(r, 20));
    const b = await openEmbeddedCluster(dataDir, log);
    open.push(b);
    expect(b.startedHere).toBe(true);
    expect(await canQuery(b)).toBe(true);
    await a.release(); // its connection is gone: nothing to do, no throw
    await b.release();
    expect(postmasterPid(dataDir)).toBeNull();
  });
});
