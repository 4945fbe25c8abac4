import v8 from 'node:v8';
import vm from 'node:vm';
import type { HeapTrim } from './host-addon.js';

type Collect = () => void;

/**
 * What a reclaim did once pod ends stopped: `skipped` (the process had not grown enough to be worth
 * it), `collected` (V8's heap only: no trim here) or `trimmed` (the C heap too).
 */
export type ReclaimOutcome = 'skipped' | 'collected' | 'trimmed';
export const RECLAIM_OUTCOMES: readonly ReclaimOutcome[] = ['skipped', 'collected', 'trimmed'];

/** What one reclaim did and gave back, for the host's debug log and metrics. */
export interface Reclaimed {
  outcome: ReclaimOutcome;
  rssBefore: number;
  rssAfter: number;
  /** The loop's time spent in the C heap's trim. */
  trimMs: number;
}

/** How long pod ends must stop before the collection runs (the default of MemoryReclaimer). */
const RECLAIM_QUIET_MS = 1000;
/** From the collection to the C heap's trim (the default of MemoryReclaimer). */
const RECLAIM_TRIM_DELAY_MS = 500;
/** How much the process must have grown since the last reclaim for the next one to run (the default of MemoryReclaimer). */
const RECLAIM_MIN_GROWTH_BYTES = 2 * 1024 * 1024;

/** What the reclaimer watches: the process's resident memory, and V8's heap with the memory it holds outside (buffers). */
export interface MemoryUse {
  rss: number;
  heap: number;
}

export interface ReclaimerOptions {
  /** glibc's malloc_trim (dist/native/host-addon.node); null: collect only. */
  trim: HeapTrim | null;
  /** Told when a pod ends while no reclaim is due: one now is, and `onReclaimed` follows. */
  onDue?: () => void;
  /** Told once a reclaim has run or was skipped: nothing of ended pods is then left to give back. */
  onReclaimed?: (r: Reclaimed) => void;
  quietMs?: number;
  maxWaitMs?: number;
  /** From the collection to the trim: V8 frees dead ArrayBuffers' memory on a helper thread. */
  trimDelayMs?: number;
  /** Skip a reclaim while neither figure of `usage` grew by this much since the last one. */
  minGrowthBytes?: number;
  /** For tests: the collection (default: V8's gc()) and the memory read. */
  collect?: Collect | null;
  usage?: () => MemoryUse;
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
 *
 * Both only once the process has grown by `minGrowthBytes` (resident memory, or V8's heap and
 * buffers) since the last reclaim: a major collection clears V8's inline caches, and the next pod
 * start re-learnt them for ~1 ms of CPU (a third more than its own work on the host), while a
 * small pod leaves far less garbage than that (a few hundred KiB): pod ends so share one
 * collection, and what the host keeps of ended pods stays under `minGrowthBytes`.
 */
export class MemoryReclaimer {
  private readonly collect: Collect | null;
  private timer: NodeJS.Timeout | null = null;
  private firstPending = 0;
  private readonly quietMs: number;
  private readonly maxWaitMs: number;
  private readonly trimDelayMs: number;
  private readonly minGrowth: number;
  private readonly usage: () => MemoryUse;
  /** The memory use after the last reclaim (or at start). */
  private base: MemoryUse;

  constructor(private readonly options: ReclaimerOptions) {
    this.collect = options.collect !== undefined ? options.collect : exposeCollector();
    this.quietMs = options.quietMs ?? RECLAIM_QUIET_MS;
    this.maxWaitMs = options.maxWaitMs ?? 10_000;
    this.trimDelayMs = options.trimDelayMs ?? RECLAIM_TRIM_DELAY_MS;
    this.minGrowth = options.minGrowthBytes ?? RECLAIM_MIN_GROWTH_BYTES;
    this.usage = options.usage ?? memoryUse;
    this.base = this.usage();
  }

  /** A pod ended: reclaim once the ends stop. */
  podEnded(): void {
    if (!this.collect && !this.options.trim) return;
    const now = Date.now();
    if (this.timer) clearTimeout(this.timer);
    else {
      this.firstPending = now;
      this.options.onDue?.();
    }
    const wait = Math.max(0, Math.min(this.quietMs, this.firstPending + this.maxWaitMs - now));
    this.arm(wait, () => {
      const now = this.usage();
      if (now.rss - this.base.rss < this.minGrowth && now.heap - this.base.heap < this.minGrowth) {
        return this.options.onReclaimed?.({ outcome: 'skipped', rssBefore: now.rss, rssAfter: now.rss, trimMs: 0 });
      }
      this.collect?.();
      if (this.options.trim) return this.arm(this.trimDelayMs, () => this.trim(now.rss));
      this.base = this.usage();
      this.options.onReclaimed?.({ outcome: 'collected', rssBefore: now.rss, rssAfter: this.base.rss, trimMs: 0 });
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
    this.base = this.usage();
    this.options.onReclaimed?.({ outcome: 'trimmed', rssBefore, rssAfter: this.base.rss, trimMs });
  }

  private arm(ms: number, run: () => void): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      run();
    }, ms);
    this.timer.unref();
  }
}

function memoryUse(): MemoryUse {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.external };
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
