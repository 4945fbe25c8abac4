import { fstatSync, readFileSync, writeSync } from 'node:fs';
import type { Sink, WriteResult } from './log-writer.js';

const O_NONBLOCK = 0o4000;
const MAX_RETRY_MS = 8;
// Made at the first wait, not at module load: a V8 startup snapshot cannot hold a SharedArrayBuffer.
let pause: Int32Array | undefined;

/**
 * Writes to a file descriptor (stderr) from the main thread without ever waiting: the fd is in
 * non-blocking mode, so a full pipe or socket answers EAGAIN at once; the rest of a partial write
 * is kept and retried on a short timer. No thread-pool thread is involved, so the bytes written
 * are known exactly and an exit flush stays in order.
 */
export class FdSink implements Sink {
  readonly joins = true;
  onReady: () => void = () => {};
  private tail: Buffer | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retryMs = 1;
  private blocked = false;

  constructor(private readonly fd = 2) {
    if (fd === 2) makeStderrNonBlocking();
  }

  get held(): number {
    return this.tail?.length ?? 0;
  }

  write(data: string | Buffer): WriteResult {
    if (this.tail || this.retry) return 'busy';
    const result = this.writeNow(data);
    if (result === 'busy' || this.tail) this.scheduleRetry();
    return result;
  }

  flushSync(deadline: number): boolean {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    for (;;) {
      if (this.tail) this.writeNow(this.tail);
      if (!this.tail && !this.blocked) return true;
      if (Date.now() > deadline) {
        if (this.tail) this.scheduleRetry();
        return false;
      }
      Atomics.wait((pause ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, 1);
      if (!this.tail) {
        this.blocked = false; // let the writer try again
        return true;
      }
    }
  }

  private writeNow(data: string | Buffer): WriteResult {
    try {
      const written = typeof data === 'string' ? writeSync(this.fd, data) : writeSync(this.fd, data, 0, data.length);
      const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
      this.blocked = false;
      this.retryMs = 1;
      this.tail = written < size ? (typeof data === 'string' ? Buffer.from(data) : data).subarray(written) : null;
      return 'written';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        this.blocked = true;
        this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
        return data === this.tail ? 'written' : 'busy';
      }
      this.tail = null; // EPIPE, EBADF, ENOSPC: what was not written is lost
      return 'failed';
    }
  }

  private scheduleRetry(): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.tail) {
        this.writeNow(this.tail);
        if (this.tail) return this.scheduleRetry();
      }
      this.onReady();
    }, this.retryMs);
    this.retry.unref();
  }
}

/**
 * A pipe or socket on stderr must be non-blocking, or a write would wait for the reader. Node's
 * process.stderr on a pipe or socket is a libuv pipe, which sets O_NONBLOCK on fd 2 (and Node
 * restores the flags at exit). A terminal or a file stays as it is.
 */
function makeStderrNonBlocking(): void {
  try {
    const stat = fstatSync(2);
    if (!stat.isFIFO() && !stat.isSocket()) return;
    if (fdFlags(2) & O_NONBLOCK) return;
    void process.stderr;
  } catch {
    // no stderr: writes will fail and be counted
  }
}

function fdFlags(fd: number): number {
  const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return m ? parseInt(m[1]!, 8) : 0;
}
