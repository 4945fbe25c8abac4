import type { Logger } from 'pino';
import type { LogWriter } from '../../log/log-writer.js';
import type { PodConfig } from '../../proxy/pod-settings.js';
import type { Dup } from '../host-addon.js';
import type { ThreadStats } from '../metrics.js';
import { PodThreadLink } from './pod-thread-link.js';
import { ThreadPod } from './thread-pod.js';
import type { ThreadSetup } from './thread-protocol.js';

export interface PodThreadsOptions {
  count: number;
  setup: Omit<ThreadSetup, 'thread'>;
  writer: LogWriter;
  log: Logger;
  dup: Dup;
}

/**
 * The host's pod threads: a pod goes to the thread with the fewest pods, so that a busy pod
 * shares its loop with as few others as there are. Every thread starts with the host (~10 MiB
 * each, whatever its pods), and one that died is replaced by the next pod that needs it.
 */
export class PodThreads {
  private readonly links: PodThreadLink[];

  constructor(private readonly options: PodThreadsOptions) {
    this.links = Array.from({ length: options.count }, (_, i) => this.start(i));
  }

  get count(): number {
    return this.options.count;
  }

  /** A pod for a thread (not started yet): `thread`, or the one with the fewest pods (but `except`). */
  pod(id: string, config: PodConfig, where: { thread?: number; except?: number } = {}): ThreadPod {
    const link = where.thread === undefined ? this.pick(where.except) : this.live(where.thread - 1);
    return new ThreadPod(link, this.options.dup, id, config);
  }

  /** Each live thread's busy share of its loop since the last call (the first: since it started). */
  utilizations(): { thread: number; utilization: number }[] {
    return this.links
      .filter((l) => !l.dead)
      .map((l) => ({ thread: l.index, utilization: l.utilizationSinceLast() }));
  }

  stats(): ThreadStats[] {
    return this.links.map((l) => ({ thread: l.index, pods: l.size, busySeconds: Math.round(l.busySeconds() * 1000) / 1000, lowered: l.lowered, reclaims: { ...l.reclaims.counts }, reclaimDue: l.reclaims.due }));
  }

  async close(): Promise<void> {
    await Promise.all(this.links.map((l) => l.close()));
  }

  private start(i: number): PodThreadLink {
    return new PodThreadLink(i + 1, this.options.setup, this.options.writer, this.options.log);
  }

  private pick(except?: number): PodThreadLink {
    let best: PodThreadLink | undefined;
    for (let i = 0; i < this.links.length; i++) {
      if (i + 1 === except) continue;
      const link = this.live(i);
      if (!best || link.size < best.size) best = link;
    }
    return best ?? this.live(0);
  }

  /** Thread i, started again if it died. */
  private live(i: number): PodThreadLink {
    if (this.links[i]!.dead) this.links[i] = this.start(i);
    return this.links[i]!;
  }
}
