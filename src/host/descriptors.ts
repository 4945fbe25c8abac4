// Sockets as descriptors: what crosses between the host's threads, and to its next version.
import { closeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import type { Handle } from '../proxy/pod-handover.js';

export { fdOf } from '../channel/socket-handover.js';

/** The inode of a descriptor's socket: its identity while it is open, in every process that holds it. */
export function inodeOf(fd: number): number {
  if (fd < 0) return -1;
  try {
    return fstatSync(fd).ino;
  } catch {
    return -1;
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // not open
  }
}

/** Closes a socket, server or bare descriptor this thread owns. */
export function closeHandle(h: Handle | number | undefined): void {
  if (typeof h === 'number') closeQuietly(h);
  else if (h instanceof net.Server) h.close();
  else h?.destroy();
}
