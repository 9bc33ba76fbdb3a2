/**
 * A fresh, migrated database for an integration test.
 *
 * FLEETCA_TEST_PG=system   the machine's PostgreSQL at postgresql://postgres@127.0.0.1:5432 (trust)
 * FLEETCA_TEST_PG=embedded (default) one embedded cluster for the whole test run, in
 *                          `<tmpdir>/fleetca-test-pg-<uid>`, shared by every vitest worker process
 *                          through openEmbeddedCluster (the last process to let go stops it).
 *
 * Each call creates its own uniquely named database; `drop()` removes it (and, in embedded mode,
 * lets go of the cluster once this process has dropped all of its databases).
 *
 *   const db = await createTestDatabase();
 *   const store = await PgStore.open({ connectionString: db.connectionString });
 *   ...
 *   await store.close(); await db.drop();
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { embeddedConnectionString, openEmbeddedCluster, type EmbeddedCluster } from '../../src/store/embedded.js';
import { runMigrations } from '../../src/store/migrate.js';

export interface TestDatabase {
  connectionString: string;
  drop(): Promise<void>;
  kind: 'embedded' | 'system';
}

const SYSTEM_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

let cluster: Promise<EmbeddedCluster> | null = null;
let clusterUsers = 0;
let counter = 0;

/** Where the shared embedded cluster of the test run lives. */
export function testClusterDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(os.tmpdir(), `fleetca-test-pg-${uid}`);
}

export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const kind = process.env.FLEETCA_TEST_PG === 'system' ? 'system' : 'embedded';
  const name = `fleetca_test_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
  let adminUrl: string;
  let connectionString: string;
  if (kind === 'system') {
    adminUrl = SYSTEM_ADMIN_URL;
    connectionString = `postgresql://postgres@127.0.0.1:5432/${name}`;
  } else {
    clusterUsers++;
    try {
      cluster ??= openEmbeddedCluster(testClusterDir(), (m) => {
        if (process.env.FLEETCA_TEST_PG_LOG) console.error(`[pg] ${m.trim()}`);
      });
      const c = await cluster;
      adminUrl = embeddedConnectionString(c.connectionConfig, 'postgres');
      connectionString = embeddedConnectionString(c.connectionConfig, name);
    } catch (err) {
      await releaseCluster();
      throw err;
    }
  }

  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  if (opts.migrate !== false) {
    const pool = new pg.Pool({ connectionString, max: 1 });
    try {
      await runMigrations(pool);
    } finally {
      await pool.end();
    }
  }

  let dropped = false;
  return {
    connectionString,
    kind,
    async drop() {
      if (dropped) return;
      dropped = true;
      try {
        await withClient(adminUrl, async (c) => {
          try {
            // Plain DROP waits (up to 5 s) for sessions that are closing — pool.end() resolves
            // before the server has seen every connection go — instead of killing them mid-close.
            await c.query(`DROP DATABASE IF EXISTS ${name}`);
          } catch (err) {
            if ((err as { code?: string }).code !== '55006') throw err;
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); // a test leaked a connection
          }
        });
      } finally {
        if (kind === 'embedded') await releaseCluster();
      }
    },
  };
}

async function releaseCluster(): Promise<void> {
  clusterUsers--;
  if (clusterUsers > 0 || !cluster) return;
  const pending = cluster;
  cluster = null;
  const c = await pending.catch(() => null); // a failed open has nothing to release
  if (c) await c.release();
}

async function withClient<T>(connectionString: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
