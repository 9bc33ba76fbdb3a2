import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // store and integration suites each start their own embedded PostgreSQL cluster; keep the
    // 2-core machine from running too many at once
    maxWorkers: 2,
  },
});
