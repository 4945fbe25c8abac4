// What the host's main thread and a pod thread say to each other (worker_threads messages). Both
// sides batch: what one turn of the loop produces goes as one message, an array of items.
import type { PodDetail, PodEnd, PodSnapshot } from '../../proxy/pod.js';
import type { PodState } from '../../proxy/pod-handover.js';
import type { PodConfig } from '../../proxy/pod-settings.js';
import type { LoggerOptions } from '../../log/logger.js';
import type { HostPodDefaults } from '../pod-options.js';
import type { Reclaimed } from '../memory-reclaimer.js';

/** A pod thread's start (workerData). */
export interface ThreadSetup {
  thread: number;
  log: Pick<LoggerOptions, 'level' | 'format'>;
  defaults: HostPodDefaults;
  /** How much lower the thread runs while its loop is busy (threads/busy-priority.ts); 0: never. */
  busyNice: number;
}

/** One socket of a pod, as a pod thread describes it: its descriptor (shared by every thread) and inode. */
export interface ThreadHandle {
  fd: number;
  ino: number;
}

/** Calls from the main thread; each gets one Reply with its `n`. */
export type CallBody =
  | { op: 'start'; id: string; config: PodConfig }
  /** A pod from the previous host: `fds` are descriptors this thread now owns (null: a tty, opened again). */
  | { op: 'adopt'; id: string; config: PodConfig; state: PodState; fds: (number | null)[] }
  | { op: 'stop'; id: string; cause: string }
  | { op: 'serving'; id: string }
  | { op: 'snapshot'; id: string }
  | { op: 'detail'; id: string }
  | { op: 'fds'; id: string }
  | { op: 'capture'; id: string; flushBoundMs: number }
  | { op: 'resume'; id: string }
  /**
   * Handed over: let go; the clients it accepted since come back as `late` events. `close`: the
   * pod moved to another thread of this process, which has copies of its sockets: this thread's
   * are closed (a copy closed is no shutdown: the connections go on).
   */
  | { op: 'release'; id: string; close?: boolean }
  /** A client the previous host accepted for this pod: a descriptor this thread now owns. */
  | { op: 'late'; id: string; fd: number }
  /** The host stops: every pod of the thread stops ('host stopping'), logs flushed. */
  | { op: 'close' };

export type Call = CallBody & { n: number };

export type CallOf<O extends CallBody['op']> = Extract<CallBody, { op: O }>;

/** What each call resolves to. */
export interface Results {
  start: null;
  adopt: null;
  stop: PodEnd;
  serving: null;
  snapshot: PodSnapshot | null;
  detail: PodDetail | null;
  fds: number[];
  capture: { state: PodState; handles: ThreadHandle[] } | { refused: string };
  resume: null;
  release: null;
  late: null;
  close: null;
}

export type Reply = { n: number; ok: true; value: unknown } | { n: number; ok: false; error: string; end?: PodEnd; code?: string };

/** A log record, formatted on the pod thread, written by the main thread's writer. */
export interface LogRecord {
  text: string;
  severity: number;
  agent: boolean;
  /** The pod whose console line it is (its share of the log queue). */
  owner: string | null;
}

/** What a pod thread says on its own. */
export type ThreadEvent =
  /** `last`: its counters at the end (the thread forgets it). */
  | { ev: 'end'; id: string; end: PodEnd; last: PodSnapshot }
  /** A client a released pod accepted: a descriptor the main thread now owns. */
  | { ev: 'late'; id: string; fd: number }
  | { ev: 'log'; records: LogRecord[]; bytes: number }
  /** Its CPU priority lowered (busy) or back; `error`: it could not be set, and is left as it is. */
  | { ev: 'priority'; lowered: boolean; utilization: number; error?: string }
  /** A pod ended while no memory reclaim was due: one is now (after its 'end'). */
  | { ev: 'reclaim-due' }
  /** Its memory reclaimer ran (or skipped) once its pod ends stopped. */
  | ({ ev: 'reclaimed' } & Reclaimed);

export type FromThread = { replies: Reply[]; events: ThreadEvent[] };
export type ToThread = { calls: Call[]; logAck?: number };
