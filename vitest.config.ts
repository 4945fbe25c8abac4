import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two files at a time, also on 2 cores (vitest's default there is one): most of a file's time
    // is spent waiting on sockets, guests and timers, so the suite takes ~130 s instead of ~215.
    maxWorkers: 2,
  },
});
