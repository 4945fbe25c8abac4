// Per-test temporary directories with short Unix socket paths (sun_path holds 108 bytes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MAX_SOCKET_PATH = 100;

export interface TempDir {
  readonly path: string;
  /** A socket path inside the directory; throws if it would not fit a sockaddr_un. */
  socket(name?: string): string;
  /** Any other file path inside the directory. */
  file(name: string): string;
  /** Removes the directory and everything in it (idempotent). */
  cleanup(): void;
}

let counter = 0;

export function createTempDir(prefix = 'kp'): TempDir {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return {
    path,
    socket(name = `s${++counter}`) {
      const p = join(path, `${name}.sock`);
      if (Buffer.byteLength(p) >= MAX_SOCKET_PATH) {
        throw new Error(`socket path too long (${Buffer.byteLength(p)} bytes): ${p}`);
      }
      return p;
    },
    file(name: string) {
      return join(path, name);
    },
    cleanup() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}
