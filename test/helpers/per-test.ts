// What each test of a file opened, closed after it (last opened, first closed), and optionally a
// fresh temporary directory per test, removed after everything else.
import { afterEach, beforeEach } from 'vitest';
import { createTempDir, type TempDir } from './tmp.js';

export interface PerTest {
  /** Push a closer for everything a test starts; they run after the test, in reverse. */
  readonly cleanups: (() => unknown)[];
  /** This test's temporary directory (only when perTest was given a prefix). */
  readonly tmp: TempDir;
}

export function perTest(tmpPrefix?: string): PerTest {
  const cleanups: (() => unknown)[] = [];
  let tmp: TempDir | null = null;
  if (tmpPrefix) {
    beforeEach(() => {
      tmp = createTempDir(tmpPrefix);
    });
  }
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    tmp?.cleanup();
    tmp = null;
  });
  return {
    cleanups,
    get tmp(): TempDir {
      if (!tmp) throw new Error('perTest() was called without a temporary-directory prefix');
      return tmp;
    },
  };
}
