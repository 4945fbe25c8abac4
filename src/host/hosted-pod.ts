import type net from 'node:net';
import type { PodDetail, PodEnd, PodSnapshot } from '../proxy/pod.js';
import { Pod } from '../proxy/pod.js';
import { capturePod, type Handle, type PodState } from '../proxy/pod-handover.js';
import { fdOf, inodeOf } from './descriptors.js';

/**
 * One socket of a pod stopped for a reload: its descriptor in this process and the socket's inode,
 * which tells the next host whether it inherited that very socket at its start. `object`: the
 * socket itself, when the pod runs on the main thread (it is then sent as it is).
 */
export interface CapturedHandle {
  fd: number;
  ino: number;
  object?: Handle;
}

export interface HostedCapture {
  state: PodState;
  handles: CapturedHandle[];
}

/**
 * A pod as the host runs it, on its main thread (LocalPod) or on a pod thread
 * (threads/thread-pod.ts): the host keeps its table, the pod its sockets.
 */
export interface HostedPod {
  readonly end: PodEnd | null;
  /** The pod thread it runs on (1, 2, ...), 0 for the main thread. */
  readonly thread: number;
  start(): Promise<void>;
  whenEnded(): Promise<PodEnd>;
  /** Resolves once its session is up; rejects if it ends first. */
  whenServing(): Promise<void>;
  stop(cause: string): Promise<PodEnd>;
  snapshot(): Promise<PodSnapshot>;
  detail(): Promise<PodDetail>;
  /** The descriptors of every socket it holds now (a reload's next host inherits them at its start). */
  socketFds(): Promise<number[]>;
  /** Stops it for a reload and describes it (pod-handover.ts), or says why it cannot move now. */
  capture(flushBoundMs: number): Promise<HostedCapture | { refused: string }>;
  /** The handover did not happen: it carries on. */
  resume(): void;
  /** Handed over: it lets go of everything; clients accepted since go to `late`, now and later. */
  release(late: (client: net.Socket) => void): Promise<void>;
  /** A client the previous host accepted on its listen socket after handing it over. */
  acceptLate(client: net.Socket): void;
}

/** A pod on the host's main thread. */
export class LocalPod implements HostedPod {
  readonly thread = 0;

  constructor(readonly pod: Pod) {}

  get end(): PodEnd | null {
    return this.pod.end;
  }

  start(): Promise<void> {
    return this.pod.start();
  }

  whenEnded(): Promise<PodEnd> {
    return this.pod.whenEnded();
  }

  whenServing(): Promise<void> {
    return this.pod.whenServing();
  }

  stop(cause: string): Promise<PodEnd> {
    return this.pod.stop(cause);
  }

  snapshot(): Promise<PodSnapshot> {
    return Promise.resolve(this.pod.snapshot());
  }

  detail(): Promise<PodDetail> {
    return Promise.resolve(this.pod.detail());
  }

  socketFds(): Promise<number[]> {
    return Promise.resolve(this.pod.sockets().map(fdOf).filter((fd) => fd >= 0));
  }

  async capture(flushBoundMs: number): Promise<HostedCapture | { refused: string }> {
    const c = await capturePod(this.pod, flushBoundMs);
    if ('refused' in c) return c;
    return { state: c.state, handles: c.handles.map((object) => ({ fd: fdOf(object), ino: inodeOf(fdOf(object)), object })) };
  }

  resume(): void {
    this.pod.resume();
  }

  release(late: (client: net.Socket) => void): Promise<void> {
    for (const client of this.pod.release(late)) late(client);
    return Promise.resolve();
  }

  acceptLate(client: net.Socket): void {
    this.pod.acceptLate(client);
  }
}
