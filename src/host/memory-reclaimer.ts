import v8 from 'node:v8';
import vm from 'node:vm';

type Collect = (options: { type: 'major'; execution: 'async' }) => void;

/**
 * Gives back the memory of ended pods. V8 collects its old generation only when it grows, and a
 * host whose pods come and go may not grow for hours: the buffers, sockets and streams of a pod
 * that carried gigabytes would sit in the heap as garbage, while a per-pod daemon's memory leaves
 * with its process. A while after pods end (so a burst of ends costs one collection) this runs a
 * major collection, incremental and concurrent (execution 'async'), so no pod's traffic waits for
 * a whole collection; at most one per `minIntervalMs`.
 */
export class MemoryReclaimer {
  private readonly collect: Collect | null;
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(
    private readonly delayMs = 1000,
    private readonly minIntervalMs = 10_000,
  ) {
    this.collect = exposeCollector();
  }

  /** A pod ended: collect a little later. */
  podEnded(): void {
    if (!this.collect || this.timer) return;
    const wait = Math.max(this.delayMs, this.last + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.last = Date.now();
      this.collect!({ type: 'major', execution: 'async' });
    }, wait);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** V8's gc() without --expose-gc on the command line (the flag is read when a context is made). */
function exposeCollector(): Collect | null {
  try {
    const existing = (globalThis as { gc?: Collect }).gc;
    if (existing) return existing;
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as Collect;
  } catch {
    return null;
  }
}
