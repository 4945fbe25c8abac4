// A pod thread whose loop stays busy (a pod moving data as fast as its peers let it) lowers its
// own CPU priority while it stays busy: when the cores are contended, the kernel then runs the
// other threads' pods first, and the busy pod waits instead of its neighbours. When the cores
// are free it still gets all it can use. On Linux a thread's nice value is its own:
// setpriority(PRIO_PROCESS, 0) changes the calling thread only.
import { getPriority, setPriority } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** A loop busy this share of a period is busy; one back under IDLE is not any more. */
export const BUSY = 0.5;
export const IDLE = 0.25;
export const BUSY_PERIOD_MS = 250;

export interface BusyPriorityOptions {
  /** How much lower (a nice increment) the thread runs while busy. */
  nice: number;
  /** Told of every change, and of a priority that could not be set. */
  changed(lowered: boolean, utilization: number, error?: string): void;
}

export class BusyPriority {
  private readonly base = getPriority(0);
  private lowered = false;
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: BusyPriorityOptions) {
    this.timer = setInterval(() => this.check(), BUSY_PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = performance.eventLoopUtilization();
    const use = performance.eventLoopUtilization(now, this.last).utilization;
    this.last = now;
    if (!this.lowered && use >= BUSY) this.set(true, use);
    else if (this.lowered && use <= IDLE) this.set(false, use);
  }

  private set(lowered: boolean, use: number): void {
    try {
      setPriority(0, lowered ? Math.min(19, this.base + this.options.nice) : this.base);
    } catch (err) {
      // Raising it back needs CAP_SYS_NICE (or RLIMIT_NICE): without it, stop here rather than
      // leave the thread's later pods behind everything else.
      this.stop();
      this.options.changed(this.lowered, use, (err as Error).message);
      return;
    }
    this.lowered = lowered;
    this.options.changed(lowered, use);
  }
}

/**
 * Whether this process may lower a thread's priority and raise it back: root, or a nice limit
 * that allows the thread's present value (RLIMIT_NICE is not readable from Node; root is what
 * a host runs as under systemd).
 */
export function mayLowerAndRestore(): boolean {
  return process.getuid?.() === 0;
}
