// Memory and thread figures of a process, read from /proc (Linux only).
import { readdirSync, readFileSync } from 'node:fs';

export interface MemSample {
  /** Resident set size, bytes. */
  rss: number;
  /** Proportional set size (shared pages divided among their users), bytes. */
  pss: number;
  /** Unique set size (Private_Clean + Private_Dirty): what killing the process would free, bytes. */
  uss: number;
  /** Anonymous memory (heap, stacks), bytes. */
  anon: number;
  threads: number;
}

/** One sample of /proc/PID/smaps_rollup and /proc/PID/task; null if the process is gone. */
export function sampleMemory(pid: number): MemSample | null {
  let text: string;
  let threads: number;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    threads = readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return null;
  }
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return {
    rss: kb('Rss'),
    pss: kb('Pss'),
    uss: kb('Private_Clean') + kb('Private_Dirty'),
    anon: kb('Anonymous'),
    threads,
  };
}

/** Names of the process's threads (/proc/PID/task/TID/comm), for the report. */
export function threadNames(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      } catch {
        return '?';
      }
    });
  } catch {
    return [];
  }
}

/** The executable's short name (/proc/PID/comm). */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** Samples a process every `intervalMs` until stop(); keeps the peak of each figure. */
export class PeakSampler {
  peak: MemSample = { rss: 0, pss: 0, uss: 0, anon: 0, threads: 0 };
  samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.timer = setInterval(() => this.take(), intervalMs);
    this.take();
  }

  private take(): void {
    const s = sampleMemory(this.pid);
    if (!s) return;
    this.samples++;
    this.peak = {
      rss: Math.max(this.peak.rss, s.rss),
      pss: Math.max(this.peak.pss, s.pss),
      uss: Math.max(this.peak.uss, s.uss),
      anon: Math.max(this.peak.anon, s.anon),
      threads: Math.max(this.peak.threads, s.threads),
    };
  }

  stop(): MemSample {
    clearInterval(this.timer);
    this.take();
    return this.peak;
  }
}

/** Waits until memory settles (RSS changes less than `tolerance` bytes between samples) or `maxMs` passes. */
export async function settledSample(pid: number, opts: { minMs?: number; maxMs?: number; tolerance?: number } = {}): Promise<MemSample | null> {
  const { minMs = 600, maxMs = 3000, tolerance = 64 * 1024 } = opts;
  const start = Date.now();
  await sleep(minMs);
  let prev = sampleMemory(pid);
  for (;;) {
    await sleep(200);
    const cur = sampleMemory(pid);
    if (!cur || !prev) return cur;
    if (Math.abs(cur.rss - prev.rss) <= tolerance || Date.now() - start > maxMs) return cur;
    prev = cur;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** CPU time (user + system) a process has used so far, seconds; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * CPU time a process's threads have run so far, milliseconds, from /proc/PID/task/TID/schedstat
 * (nanoseconds: finer than the 10 ms ticks of /proc/PID/stat); NaN if it is gone.
 */
export function cpuTimeMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;
