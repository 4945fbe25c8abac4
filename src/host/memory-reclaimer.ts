import v8 from 'node:v8';
import vm from 'node:vm';

type Collect = (options: { type: 'major'; execution: 'sync' }) => void;

/** How long pod ends must stop before the collection runs (the default of MemoryReclaimer). */
export const RECLAIM_QUIET_MS = 1000;

/**
 * Gives back the memory of ended pods. V8 collects its old generation only when it grows, and a
 * host whose pods come and go may not grow for hours: the buffers, sockets and streams of ended
 * pods would sit in the heap as garbage, while a per-pod daemon's memory leaves with its process.
 * Once pods stop ending for `quietMs` (a burst of ends costs one collection), or `maxWaitMs` after
 * the first end not yet collected, this runs a major collection. A synchronous one: an
 * incremental collection ('async') only advances as the program allocates, and an idle host
 * never finishes it. Measured: a few ms for a host of 100 pods.
 */
export class MemoryReclaimer {
  private readonly collect: Collect | null;
  private timer: NodeJS.Timeout | null = null;
  private firstPending = 0;

  constructor(
    private readonly quietMs = RECLAIM_QUIET_MS,
    private readonly maxWaitMs = 10_000,
  ) {
    this.collect = exposeCollector();
  }

  /** A pod ended: collect once the ends stop. */
  podEnded(): void {
    if (!this.collect) return;
    const now = Date.now();
    if (!this.timer) this.firstPending = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstPending + this.maxWaitMs - now));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.collect!({ type: 'major', execution: 'sync' });
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
