import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Give up after this long (ms). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called before each wait, for a debug log line. */
  onRetry?: (attempt: number, err: NodeJS.ErrnoException, delayMs: number) => void;
  /** Read into this one buffer instead of a new one per read (no 'data' events then). */
  onread?: net.OnReadOpts;
}

/** Errors that mean "the other side is not there yet": QEMU has not created or opened the chardev. */
const TRANSIENT = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/**
 * Connects to a Unix socket, retrying with exponential back-off (10 ms doubling to 500 ms) while
 * it does not exist or refuses, for at most timeoutMs.
 */
export async function connectWithRetry(path: string, options: RetryOptions): Promise<net.Socket> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = 10;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await connectOnce(path, options.onread);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const left = deadline - Date.now();
      if (!TRANSIENT.has(err.code ?? '') || left <= 0) {
        const reason = left <= 0 ? `gave up after ${options.timeoutMs} ms: ` : '';
        throw Object.assign(new Error(`cannot connect to ${path}: ${reason}${err.message}`), {
          code: err.code,
          cause: err,
        });
      }
      const wait = Math.min(delay, left);
      options.onRetry?.(attempt, err, wait);
      await sleep(wait, undefined, { signal: options.signal });
      delay = Math.min(delay * 2, 500);
    }
  }
}

function connectOnce(path: string, onread?: net.OnReadOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path, allowHalfOpen: false, ...(onread ? { onread } : {}) });
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
