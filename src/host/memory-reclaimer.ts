import v8 from 'node:v8';
import vm from 'node:vm';
import type { HeapTrim } from './heap-trim.js';

type Collect = () => void;

/** What one reclaim gave back, for the host's debug log. */
export interface Reclaimed {
  rssBefore: number;
  rssAfter: number;
  /** The loop's time spent in the C heap's trim. */
  trimMs: number;
}

/** How long pod ends must stop before the collection runs (the default of MemoryReclaimer). */
export const RECLAIM_QUIET_MS = 1000;
/** From the collection to the C heap's trim (the default of MemoryReclaimer). */
export const RECLAIM_TRIM_DELAY_MS = 500;

export interface ReclaimerOptions {
  /** glibc's malloc_trim (dist/native/malloc-trim.node); null: collect only. */
  trim: HeapTrim | null;
  onReclaimed?: (r: Reclaimed) => void;
  quietMs?: number;
  maxWaitMs?: number;
  /** From the collection to the trim: V8 frees dead ArrayBuffers' memory on a helper thread. */
  trimDelayMs?: number;
}

/**
 * Gives back the memory of ended pods, in two steps.
 *
 * 1. A major collection. V8 collects its old generation only when it grows, and a host whose pods
 *    come and go may not grow for hours: the buffers, sockets and streams of ended pods would sit
 *    in the heap as garbage, while a per-pod daemon's memory leaves with its process. Once pods
 *    stop ending for `quietMs` (a burst of ends costs one collection), or `maxWaitMs` after the
 *    first end not yet collected. Synchronous and argument-less: an incremental collection only
 *    advances as the program allocates (an idle host never finishes it), and on Node 20
 *    `gc({ type: 'major', execution: 'sync' })` leaves dead ArrayBuffers' memory allocated.
 * 2. A trim of the C heap. The freed read buffers of a busy pod lie between live chunks, and glibc
 *    returns only the top of its heap by itself: measured, a pod that carried 768 MiB left the host
 *    ~30 MiB larger for good. malloc_trim returns every free page, ~0.1 ms per MiB it gives back.
 */
export class MemoryReclaimer {
  private readonly collect: Collect | null;
  private timer: NodeJS.Timeout | null = null;
  private firstPending = 0;
  private readonly quietMs: number;
  private readonly maxWaitMs: number;
  private readonly trimDelayMs: number;

  constructor(private readonly options: ReclaimerOptions) {
    this.collect = exposeCollector();
    this.quietMs = options.quietMs ?? RECLAIM_QUIET_MS;
    this.maxWaitMs = options.maxWaitMs ?? 10_000;
    this.trimDelayMs = options.trimDelayMs ?? RECLAIM_TRIM_DELAY_MS;
  }

  /** A pod ended: reclaim once the ends stop. */
  podEnded(): void {
    if (!this.collect && !this.options.trim) return;
    const now = Date.now();
    if (!this.timer) this.firstPending = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstPending + this.maxWaitMs - now));
    this.arm(wait, () => {
      const rssBefore = process.memoryUsage.rss();
      this.collect?.();
      if (this.options.trim) this.arm(this.trimDelayMs, () => this.trim(rssBefore));
    });
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private trim(rssBefore: number): void {
    const start = process.hrtime.bigint();
    this.options.trim!();
    const trimMs = Number(process.hrtime.bigint() - start) / 1e6;
    this.options.onReclaimed?.({ rssBefore, rssAfter: process.memoryUsage.rss(), trimMs });
  }

  private arm(ms: number, run: () => void): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      run();
    }, ms);
    this.timer.unref();
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
