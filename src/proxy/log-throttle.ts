import type { Logger } from 'pino';

export type ThrottledLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogThrottleOptions {
  /** Lines of one message written before the rest are only counted. */
  burst: number;
  /** How often the count of the lines left out is written. */
  intervalMs: number;
}

interface Kind {
  log: Logger;
  level: ThrottledLevel;
  written: number;
  suppressed: number;
  /** Lines asked for since the last tick; a tick with none forgets the message. */
  recent: number;
  since: number;
}

/**
 * Aggregates the lines a guest can repeat at will (frames for unknown streams, refused streams,
 * clients refused after its GoAway), per message: the first `burst` are written, then one line
 * per interval with `suppressed` (how many were left out) while it goes on. A message silent for
 * a whole interval starts afresh. So whatever the guest sends, one message costs at most
 * `burst` lines per interval, and `burst` + 1 in any two intervals once it is sustained.
 */
export class LogThrottle {
  private readonly kinds = new Map<string, Kind>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: LogThrottleOptions = { burst: 5, intervalMs: 10_000 }) {}

  write(log: Logger, level: ThrottledLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!log.isLevelEnabled(level)) return;
    let kind = this.kinds.get(msg);
    if (!kind) {
      kind = { log, level, written: 0, suppressed: 0, recent: 0, since: Date.now() };
      this.kinds.set(msg, kind);
      this.timer ??= setInterval(this.tick, this.options.intervalMs).unref();
    }
    kind.recent++;
    if (kind.written < this.options.burst) {
      kind.written++;
      log[level](fields ?? {}, msg);
    } else {
      kind.suppressed++;
    }
  }

  /** Writes the counts not yet written and forgets everything (the pod is ending). */
  flush(): void {
    for (const [msg, kind] of this.kinds) this.writeCount(msg, kind);
    this.kinds.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private readonly tick = (): void => {
    for (const [msg, kind] of this.kinds) {
      this.writeCount(msg, kind);
      if (kind.recent === 0) this.kinds.delete(msg);
      kind.recent = 0;
    }
    if (this.kinds.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  };

  private writeCount(msg: string, kind: Kind): void {
    const now = Date.now();
    if (kind.suppressed > 0) {
      kind.log[kind.level]({ suppressed: kind.suppressed, sinceMs: now - kind.since }, msg);
      kind.suppressed = 0;
    }
    kind.since = now;
  }
}
