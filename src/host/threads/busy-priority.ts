// A pod thread whose loop stays busy (a pod moving data as fast as its peers let it) lowers its
// own CPU priority while it stays busy: when the cores are contended, the kernel then runs the
// other threads' pods first, and the busy pod waits instead of its neighbours. When the cores
// are free it still gets all it can use. On Linux a thread's nice value is its own:
// setpriority(PRIO_PROCESS, 0) changes the calling thread only.
import { getPriority, setPriority } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** A loop busy this share of a period is busy (the rebalancer's "hot" too); one back under IDLE is not any more. */
export const BUSY = 0.5;
const IDLE = 0.25;
const PERIOD_MS = 250;

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
    this.timer = setInterval(() => this.check(), PERIOD_MS);
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
      // Refused (raising it back needs CAP_SYS_NICE, and a seccomp filter may refuse even root):
      // the thread stays as it is and stops trying, rather than flap at every period.
      this.stop();
      this.options.changed(this.lowered, use, (err as Error).message);
      return;
    }
    this.lowered = lowered;
    this.options.changed(lowered, use);
  }
}

/**
 * Whether this process may lower a thread's priority and raise it back: root (what a host runs
 * as under systemd). An RLIMIT_NICE that would allow it is not readable from Node.
 */
export function mayLowerAndRestore(): boolean {
  return process.getuid?.() === 0;
}
