import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { LogWriter } from '../../log/log-writer.js';
import { closeQuietly } from '../descriptors.js';
import { packageRoot } from '../../package-root.js';
import { ReclaimStats } from '../reclaim-stats.js';
import type { PodEnd, PodSnapshot } from '../../proxy/pod.js';
import type { Call, CallBody, CallOf, FromThread, Results, ThreadSetup, ToThread } from './thread-protocol.js';

/** What the link tells the pods of its thread (threads/thread-pod.ts). */
export interface ThreadPodEvents {
  ended(end: PodEnd, last: PodSnapshot): void;
  /** A client its released pod accepted: a descriptor the main thread now owns. */
  late(fd: number): void;
  /** The thread is gone, and the pod with it. */
  threadDied(reason: string): void;
}

export class ThreadCallError extends Error {
  constructor(
    message: string,
    readonly end?: PodEnd,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * The thread's file: beside this one, as compiled by tsc or as the bundle's own entry; from the
 * TypeScript source (tests), the compiled one.
 */
function threadEntry(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return pathToFileURL(path.join(packageRoot(), 'dist', 'src', 'host', 'threads', 'pod-thread.js'));
  return new URL(here.endsWith('.cjs') ? './pod-thread.cjs' : './pod-thread.js', here);
}

/**
 * The main thread's end of one pod thread: calls batched per turn, replies matched by number,
 * the thread's log records written through the host's writer, its pods told when it dies.
 */
export class PodThreadLink {
  readonly pods = new Map<string, ThreadPodEvents>();
  dead: string | null = null;
  /** Its CPU priority is lowered: its loop is busy (threads/busy-priority.ts). */
  lowered = false;
  readonly reclaims: ReclaimStats;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private next = 1;
  private calls: Call[] = [];
  private logAck = 0;
  private scheduled = false;

  constructor(
    readonly index: number,
    setup: Omit<ThreadSetup, 'thread'>,
    private readonly writer: LogWriter,
    private readonly log: Logger,
  ) {
    this.reclaims = new ReclaimStats(log, { thread: index });
    // It inherits the process's options (those that are per thread, such as --import).
    this.worker = new Worker(threadEntry(), { workerData: { ...setup, thread: index } satisfies ThreadSetup });
    this.worker.on('message', (m: FromThread) => this.receive(m));
    this.worker.on('error', (err) => this.died(err.message));
    this.worker.on('exit', (code) => this.died(`exited with status ${code}`));
  }

  /** Pods on this thread (live ones; ended pods leave it). */
  get size(): number {
    return this.pods.size;
  }

  private lastUse: EventLoopUtilization | undefined;

  /** The busy share of its loop since the last call. */
  utilizationSinceLast(): number {
    const now = this.worker.performance.eventLoopUtilization();
    const use = this.lastUse ? this.worker.performance.eventLoopUtilization(now, this.lastUse).utilization : now.utilization;
    this.lastUse = now;
    return use;
  }

  /** Seconds its event loop has been busy since it started. */
  busySeconds(): number {
    return this.dead ? 0 : this.worker.performance.eventLoopUtilization().active / 1000;
  }

  call<O extends CallBody['op']>(call: CallOf<O>): Promise<Results[O]> {
    if (this.dead) return Promise.reject(new ThreadCallError(`pod thread ${this.index} is gone (${this.dead})`));
    const n = this.next++;
    this.calls.push({ ...call, n });
    this.schedule();
    return new Promise((resolve, reject) => this.pending.set(n, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** Stops every pod of the thread, then the thread. */
  async close(): Promise<void> {
    if (!this.dead) await this.call({ op: 'close' }).catch(() => {});
    this.dead ??= 'closed';
    await this.worker.terminate();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.dead || (this.calls.length === 0 && this.logAck === 0)) return;
      const message: ToThread = { calls: this.calls, ...(this.logAck ? { logAck: this.logAck } : {}) };
      this.calls = [];
      this.logAck = 0;
      this.worker.postMessage(message);
    });
  }

  private receive(m: FromThread): void {
    for (const r of m.replies) {
      const p = this.pending.get(r.n);
      if (!p) continue;
      this.pending.delete(r.n);
      if (r.ok) p.resolve(r.value);
      else p.reject(new ThreadCallError(r.error, r.end, r.code));
    }
    for (const e of m.events) {
      switch (e.ev) {
        case 'end': {
          const pod = this.pods.get(e.id);
          this.pods.delete(e.id);
          pod?.ended(e.end, e.last);
          break;
        }
        case 'late': {
          const pod = this.pods.get(e.id);
          if (pod) pod.late(e.fd);
          else closeQuietly(e.fd);
          break;
        }
        case 'log':
          for (const r of e.records) {
            const priority = r.agent ? 'agent' : 'proxy';
            if (this.writer.admit(priority, r.text.length, r.owner ?? undefined)) this.writer.write(r.text, r.severity, priority);
          }
          this.logAck += e.bytes;
          this.schedule();
          break;
        case 'priority': {
          const fields = { thread: this.index, utilization: Math.round(e.utilization * 100) / 100 };
          if (e.error) this.log.warn({ ...fields, err: e.error }, "a pod thread cannot change its CPU priority; it keeps it from now on");
          else this.log.debug(fields, e.lowered ? 'pod thread busy: its CPU priority lowered' : 'pod thread no longer busy: its CPU priority back');
          this.lowered = e.lowered;
          break;
        }
        case 'reclaim-due':
          this.reclaims.markDue();
          break;
        case 'reclaimed':
          this.reclaims.record(e);
          break;
      }
    }
  }

  private died(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    // Its isolate's heap goes with it: no reclaim of its is due any more.
    this.reclaims.due = false;
    this.log.error({ thread: this.index, err: reason, pods: this.pods.size }, 'a pod thread ended; its pods end with it');
    for (const p of this.pending.values()) p.reject(new ThreadCallError(`pod thread ${this.index} is gone (${reason})`));
    this.pending.clear();
    const pods = [...this.pods.values()];
    this.pods.clear();
    for (const pod of pods) pod.threadDied(reason);
  }
}
