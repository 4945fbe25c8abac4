import { TimeoutError, YamuxError } from './errors.js';
import type { PingsSnapshot } from './snapshot.js';

/** Most pings that may be outstanding at once (a paused peer must not grow this without bound). */
const MAX_OUTSTANDING = 64;

interface PendingPing {
  startedAt: bigint;
  /** Wall clock, for a handover. */
  sentAt: number;
  deadline: number;
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
      const now = Date.now();
      this.track(value, now, now + timeoutMs, resolve, reject, `ping not answered within ${timeoutMs} ms`);
      this.send(value);
    });
  }

  snapshot(): PingsSnapshot {
    const pending = [...this.pending].map(([value, p]) => ({ value, sentAt: p.sentAt, deadline: p.deadline }));
    return { nextValue: this.nextValue, lastRttMs: this.lastRttMs, pending };
  }

  /** Pings another process sent: their answers are matched and timed, nobody here awaits them. */
  restore(s: PingsSnapshot): void {
    this.nextValue = s.nextValue >>> 0;
    this.lastRttMs = s.lastRttMs;
    const ignore = () => {};
    for (const p of s.pending.slice(0, MAX_OUTSTANDING)) this.track(p.value, p.sentAt, p.deadline, ignore, ignore, 'ping not answered');
  }

  /** Stops the timeouts (a handover in progress); `rearm` starts them again at their deadlines. */
  disarm(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
  }

  rearm(): void {
    for (const [value, p] of this.pending) this.track(value, p.sentAt, p.deadline, p.resolve, p.reject, 'ping not answered', p.startedAt);
  }

  private track(
    value: number,
    sentAt: number,
    deadline: number,
    resolve: (rttMs: number) => void,
    reject: (err: Error) => void,
    message: string,
    startedAt = process.hrtime.bigint() - BigInt(Math.max(0, Date.now() - sentAt)) * 1_000_000n,
  ): void {
    const timer = setTimeout(() => {
      this.pending.delete(value);
      reject(new TimeoutError(message));
    }, Math.max(0, deadline - Date.now()));
    timer.unref();
    this.pending.set(value, { startedAt, sentAt, deadline, resolve, reject, timer });
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
