import type { Logger } from 'pino';
import type { Session } from '../yamux/index.js';

/**
 * One Ping per interval while the session lives, as the Go proxy does: QEMU's virtio-serial
 * path can stall until more bytes are written. Failures are logged at debug and never end the
 * session: a paused VM stays paused for minutes.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(session: Session): void {
    if (this.intervalMs <= 0) return;
    this.stop();
    const timeout = Math.max(this.intervalMs * 5, 1000);
    this.timer = setInterval(() => {
      session.ping(timeout).then(
        (rttMs) => this.log.trace?.({ rttMs }, 'heartbeat'),
        (err: Error) => {
          if (!session.closed) this.log.debug({ err: err.message }, 'heartbeat ping failed');
        },
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
