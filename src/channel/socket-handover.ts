import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { readableBytes } from '../yamux/snapshot.js';

/** The libuv handle behind a net.Socket (internal API, stable since Node 0.x). */
interface StreamHandle {
  reading: boolean;
  /** Set by stopReading: resumeReading restarts only what it stopped. */
  stoppedForHandover?: boolean;
  readStop(): number;
  readStart(): number;
  readonly writeQueueSize?: number;
}

function handleOf(socket: Duplex): StreamHandle | null {
  return (socket as unknown as { _handle?: StreamHandle | null })._handle ?? null;
}

/** The descriptor behind a socket or server of this thread (-1 when closed). */
export function fdOf(h: net.Socket | net.Server): number {
  return (h as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1;
}

/**
 * Stops reading at the handle: after this, no byte leaves the kernel's socket buffer into this
 * process. pause() alone is not enough: Node keeps one read posted, and the chunk it brings in
 * lands in a buffer the next owner of the descriptor never sees.
 */
export function stopReading(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle || !handle.reading) return;
  handle.reading = false;
  handle.stoppedForHandover = true;
  handle.readStop();
}

/** Undoes stopReading (a handover that did not happen, or a socket that arrived from another process). */
export function resumeReading(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle?.stoppedForHandover) return;
  handle.stoppedForHandover = false;
  restartReading(socket);
}

/**
 * Starts reading at the handle whatever Node's Readable believes (it may think a read is still
 * posted, and would then never post one).
 */
export function restartReading(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle || handle.reading || socket.destroyed) return;
  handle.reading = true;
  handle.readStart();
}

/** Bytes Node read from the socket (or tty) that nobody consumed yet (they travel with the state). */
export function unreadBytes(socket: Duplex): Buffer {
  return readableBytes(socket);
}

/** Everything written so far has reached the kernel (a tty stream has no handle: its writes are done once acknowledged). */
export function writesFlushed(socket: Duplex): boolean {
  return socket.destroyed || (socket.writableLength === 0 && (handleOf(socket)?.writeQueueSize ?? 0) === 0);
}

/**
 * Resolves true once everything written to `sockets` reached the kernel, false after
 * `timeoutMs` (a peer that does not read).
 */
export function whenFlushed(sockets: readonly Duplex[], timeoutMs: number): Promise<boolean> {
  const pending = sockets.filter((s) => !writesFlushed(s));
  if (pending.length === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      if (pending.every(writesFlushed)) return resolve(true);
      if (Date.now() >= deadline) return resolve(false);
      setTimeout(check, 2);
    };
    setImmediate(check);
  });
}
