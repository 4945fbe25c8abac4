import net from 'node:net';
import { stopReading } from '../../channel/socket-handover.js';
import { ListenSocketError } from '../../proxy/listener.js';
import type { PodDetail, PodEnd, PodSnapshot } from '../../proxy/pod.js';
import type { PodState } from '../../proxy/pod-handover.js';
import type { PodConfig } from '../../proxy/pod-settings.js';
import type { Dup } from '../host-addon.js';
import { closeQuietly, fdOf } from '../descriptors.js';
import type { HostedCapture, HostedPod } from '../hosted-pod.js';
import { ThreadCallError, type PodThreadLink, type ThreadPodEvents } from './pod-thread-link.js';

/** A pod that runs on a pod thread, as the host's main thread sees it. */
export class ThreadPod implements HostedPod, ThreadPodEvents {
  private endInfo: PodEnd | null = null;
  private last: PodSnapshot | null = null;
  private readonly endedPromise: Promise<PodEnd>;
  private resolveEnded!: (end: PodEnd) => void;
  private lateTo: ((client: net.Socket) => void) | null = null;

  constructor(
    private readonly link: PodThreadLink,
    private readonly dup: Dup,
    readonly id: string,
    private readonly config: PodConfig,
  ) {
    this.endedPromise = new Promise((resolve) => (this.resolveEnded = resolve));
    link.pods.set(id, this);
  }

  get thread(): number {
    return this.link.index;
  }

  get end(): PodEnd | null {
    return this.endInfo;
  }

  async start(): Promise<void> {
    try {
      await this.link.call({ op: 'start', id: this.id, config: this.config });
    } catch (err) {
      const e = err as ThreadCallError;
      throw e.code === 'listen-socket-unavailable' ? new ListenSocketError(e.message) : e;
    }
  }

  /** Runs a pod the previous host handed over; `fds` are descriptors the thread then owns. */
  adopt(state: PodState, fds: (number | null)[]): Promise<void> {
    return this.link.call({ op: 'adopt', id: this.id, config: this.config, state, fds }).then(() => {});
  }

  whenEnded(): Promise<PodEnd> {
    return this.endedPromise;
  }

  async whenServing(): Promise<void> {
    if (this.endInfo) throw Object.assign(new Error(`pod ${this.endInfo.reason}`), { end: this.endInfo });
    try {
      await this.link.call({ op: 'serving', id: this.id });
    } catch (err) {
      const end = (err as ThreadCallError).end ?? this.endInfo;
      throw Object.assign(new Error((err as Error).message), end ? { end } : {});
    }
  }

  async stop(cause: string): Promise<PodEnd> {
    if (!this.endInfo) {
      const end = await this.link.call({ op: 'stop', id: this.id, cause }).catch(() => null);
      if (end && !this.endInfo) return end;
    }
    return this.endedPromise;
  }

  async snapshot(): Promise<PodSnapshot> {
    // Null: it ended meanwhile, and its end (handled before this answer's await resumes) brought its last counters.
    const live = this.last ? null : await this.link.call({ op: 'snapshot', id: this.id });
    return live ?? this.last!;
  }

  async detail(): Promise<PodDetail> {
    const live = this.last ? null : await this.link.call({ op: 'detail', id: this.id });
    return live ?? { ...this.last!, session: null, streamDetail: [] };
  }

  socketFds(): Promise<number[]> {
    if (this.endInfo) return Promise.resolve([]);
    return this.link.call({ op: 'fds', id: this.id }).catch(() => []);
  }

  capture(flushBoundMs: number): Promise<HostedCapture | { refused: string }> {
    return this.link.call({ op: 'capture', id: this.id, flushBoundMs }).catch((err: Error) => ({ refused: err.message }));
  }

  resume(): void {
    void this.link.call({ op: 'resume', id: this.id }).catch(() => {});
  }

  async release(late: (client: net.Socket) => void, close = false): Promise<void> {
    this.lateTo = late;
    await this.link.call({ op: 'release', id: this.id, close }).catch(() => {});
  }

  /**
   * Moved to another thread of this host, which runs it from copies of its sockets: this thread
   * lets go of it and closes its own; clients it accepted meanwhile go to `late`.
   */
  async releaseMoved(late: (client: net.Socket) => void): Promise<void> {
    await this.release(late, true);
    this.lateTo = null;
    this.forget();
  }

  /** An adoption that failed: the thread holds nothing of it. */
  forget(): void {
    if (this.link.pods.get(this.id) === this) this.link.pods.delete(this.id);
  }

  acceptLate(client: net.Socket): void {
    // Passed to the thread as a copy of its descriptor; nothing was read here (same turn).
    stopReading(client);
    const copy = this.endInfo ? -1 : this.dup(fdOf(client));
    client.destroy();
    if (copy < 0) return;
    this.link.call({ op: 'late', id: this.id, fd: copy }).catch(() => closeQuietly(copy));
  }

  // ---- from the thread (ThreadPodEvents) ----

  ended(end: PodEnd, last: PodSnapshot): void {
    if (this.endInfo) return;
    this.last = last;
    this.endInfo = end;
    this.resolveEnded(end);
  }

  late(fd: number): void {
    if (!this.lateTo) return closeQuietly(fd);
    // Not read here: it only passes through to the next host.
    this.lateTo(new net.Socket({ fd, readable: false, writable: false }));
  }

  threadDied(reason: string): void {
    const end: PodEnd = { reason: 'failed', error: `its pod thread ended (${reason})`, status: 1 };
    this.ended(end, { state: 'stopped', clients: 0, streams: 0, bytesIn: 0, bytesOut: 0, uptimeMs: 0, connectionsServed: 0, end });
  }
}
