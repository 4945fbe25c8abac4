import type net from 'node:net';
import { RateLimiter } from '../channel/rate-limiter.js';

export interface ConnectionRate {
  perSecond: number;
  burst: number;
  /** Clients that may wait for their turn; the ones past it are refused. */
  maxWaiting: number;
}

/**
 * A pod's rate of new connections, in host mode. Every connection costs the shared loop an
 * accept, a stream opened on the guest channel and, when the guest resets it, a close: a guest
 * that resets every stream while the shims reconnect in a loop made one pod take 60 % of the
 * host's CPU, and its neighbours waited behind it. Clients over the rate wait in order (they
 * are not refused while the queue has room): a pod's own legitimate bursts (a container's exec
 * sessions, the runtime's calls) stay well under it.
 */
export class ConnectionAdmission {
  private readonly bucket: RateLimiter;
  private queue: net.Socket[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Clients that had to wait, since the start. */
  delayed = 0;

  constructor(
    private readonly rate: ConnectionRate,
    private readonly admit: (client: net.Socket) => void,
    private readonly refuse: (client: net.Socket) => void,
  ) {
    this.bucket = new RateLimiter(rate.perSecond, rate.burst);
  }

  get waiting(): number {
    return this.queue.length;
  }

  offer(client: net.Socket): void {
    if (this.queue.length === 0 && this.bucket.allow()) {
      this.admit(client);
      return;
    }
    if (this.queue.length >= this.rate.maxWaiting) {
      this.refuse(client);
      return;
    }
    this.delayed++;
    this.queue.push(client);
    this.arm();
  }

  /** The clients still waiting, taken out (a handover or a stop deals with them). */
  drain(): net.Socket[] {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const out = this.queue;
    this.queue = [];
    return out;
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(this.release, Math.max(1, this.bucket.msUntilNext()));
    this.timer.unref();
  }

  private readonly release = (): void => {
    this.timer = null;
    let served = 0;
    while (served < this.queue.length && this.bucket.allow()) served++;
    const now = this.queue.splice(0, served);
    if (this.queue.length > 0) this.arm();
    for (const client of now) {
      if (!client.destroyed) this.admit(client);
    }
  };
}
