// Memory and thread figures of a process, read from /proc (Linux only).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

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

/** /proc/PID/smaps split into the process's own executable and everything else, bytes. */
export interface ExeSplit {
  /** Resident pages of the executable's mappings (the node binary for Node processes). */
  exeRss: number;
  /** Proportional set size of everything else (heap, stacks, libraries, other files). */
  otherPss: number;
}

/** null if the process is gone. */
export function exeSplit(pid: number): ExeSplit | null {
  let text: string;
  let exe: string;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return null;
  }
  const split: ExeSplit = { exeRss: 0, otherPss: 0 };
  let ofExe = false;
  for (const line of text.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      ofExe = header[1] === exe;
      continue;
    }
    const m = /^(Rss|Pss):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    if (ofExe && m[1] === 'Rss') split.exeRss += Number(m[2]) * 1024;
    if (!ofExe && m[1] === 'Pss') split.otherPss += Number(m[2]) * 1024;
  }
  return split;
}

/**
 * PSS of a group of processes as if no process outside it ran the same executable: the pages of
 * the executable (the node binary) counted once for the group, whole, not divided with every other
 * Node process on the machine (the bench's own, a test runner's) as PSS divides them. What a
 * `kata-proxy host` or a fleet of daemons costs on a host where they are the only Node processes.
 */
export function groupPss(pids: number[]): number {
  let exe = 0;
  let other = 0;
  for (const pid of pids) {
    const s = exeSplit(pid);
    if (!s) continue;
    exe = Math.max(exe, s.exeRss);
    other += s.otherPss;
  }
  return exe + other;
}
