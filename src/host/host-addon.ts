import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

/** Gives the C heap's free pages back to the kernel; true when some went back. */
export type HeapTrim = () => boolean;

/** A second descriptor of the same open file (close-on-exec); a negative errno on failure. */
export type Dup = (fd: number) => number;

export type HostAddon = { trim: HeapTrim; dup: Dup; reason?: undefined } | { trim: null; dup: null; reason: string };

let loaded: HostAddon | undefined;

/**
 * Loads dist/native/host-addon.node (native/host-addon.c): glibc's malloc_trim, and dup(). Missing
 * where nothing could build it, or meaningless where node does not use glibc: the host then runs
 * without (every pod on its main thread, the C heap untrimmed), and says why once.
 */
export function loadHostAddon(): HostAddon {
  loaded ??= load();
  return loaded;
}

function load(): HostAddon {
  if (process.platform !== 'linux') return { trim: null, dup: null, reason: `no host add-on on ${process.platform}` };
  const file = path.join(packageRoot(), 'dist', 'native', 'host-addon.node');
  try {
    const addon = createRequire(import.meta.url)(file) as { trim?: unknown; dup?: unknown };
    if (typeof addon.trim !== 'function' || typeof addon.dup !== 'function') return { trim: null, dup: null, reason: `${file} is not this version's add-on (no trim or dup)` };
    return { trim: addon.trim as HeapTrim, dup: addon.dup as Dup };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { trim: null, dup: null, reason: `${file} does not load (${message})` };
  }
}

/** dup(), throwing on failure. */
export function dupOrThrow(dup: Dup, fd: number): number {
  const copy = dup(fd);
  if (copy < 0) throw new Error(`cannot duplicate descriptor ${fd} (errno ${-copy})`);
  return copy;
}
