import { TimeoutError, YamuxError } from './errors.js';

/** Most pings that may be outstanding at once (a paused peer must not grow this without bound). */
const MAX_OUTSTANDING = 64;

interface PendingPing {
  startedAt: bigint;
  resolve: (rttMs: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Pings by opaque value: sends them, matches the ACKs, measures the round trip. */
export class PingTracker {
  private readonly pending = new Map<number, PendingPing>();
  private nextValue = 0;
  /** The last measured round trip, ms (0 until a ping was answered). */
  lastRttMs = 0;

  constructor(private readonly send: (value: number) => void) {}

  ping(timeoutMs: number): Promise<number> {
    if (this.pending.size >= MAX_OUTSTANDING) {
      return Promise.reject(new YamuxError('too many unanswered pings', 'ERR_YAMUX_PING_BACKLOG'));
    }
    const value = this.nextValue;
    this.nextValue = (this.nextValue + 1) >>> 0;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(value);
        reject(new TimeoutError(`ping not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(value, { startedAt: process.hrtime.bigint(), resolve, reject, timer });
      this.send(value);
    });
  }

  /** An ACK for a value we never sent (or already timed out) is ignored. */
  answered(value: number): void {
    const ping = this.pending.get(value);
    if (!ping) return;
    this.pending.delete(value);
    clearTimeout(ping.timer);
    this.lastRttMs = Number(process.hrtime.bigint() - ping.startedAt) / 1e6;
    ping.resolve(this.lastRttMs);
  }

  cancelAll(err: Error): void {
    for (const ping of this.pending.values()) {
      clearTimeout(ping.timer);
      ping.reject(err);
    }
    this.pending.clear();
  }
}
