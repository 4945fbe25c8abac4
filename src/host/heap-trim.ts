import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

/** Gives the C heap's free pages back to the kernel; true when some went back. */
export type HeapTrim = () => boolean;

export type HeapTrimLoad = { trim: HeapTrim; reason?: undefined } | { trim: null; reason: string };

/**
 * Loads dist/native/malloc-trim.node (native/malloc-trim.c), glibc's malloc_trim for the host.
 * Missing where nothing could build it, or meaningless where node does not use glibc: the host
 * then runs without, and says why once.
 */
export function loadHeapTrim(): HeapTrimLoad {
  if (process.platform !== 'linux') return { trim: null, reason: `no heap trimming on ${process.platform}` };
  const file = path.join(packageRoot(), 'dist', 'native', 'malloc-trim.node');
  try {
    const addon = createRequire(import.meta.url)(file) as { trim?: unknown };
    if (typeof addon.trim !== 'function') return { trim: null, reason: `${file} has no trim()` };
    return { trim: addon.trim as HeapTrim };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { trim: null, reason: `${file} does not load (${message}): memory a busy pod fragmented in the C heap stays with the host` };
  }
}
