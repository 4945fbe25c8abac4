import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonLoadFailure } from '../native-addon.js';
import type { Sink, WriteResult } from './log-writer.js';

/** syslog severities (RFC 5424) by pino level label. */
export const SEVERITY: Record<string, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
  panic: 0,
};

/**
 * Opens syslog with tag kata-proxy and facility USER through the `modern-syslog` native module.
 * Returns the reason instead when that is impossible (no /dev/log, module not built): the
 * caller then logs to stderr and says so once. The Go original exits here; we never do.
 */
export function openSyslog(socketPath = '/dev/log'): SyslogSink | string {
  if (!existsSync(socketPath)) return `${socketPath} does not exist`;
  let syslog: ModernSyslog;
  try {
    syslog = createRequire(import.meta.url)('modern-syslog') as ModernSyslog;
  } catch (err) {
    return addonLoadFailure('modern-syslog', err);
  }
  syslog.open('kata-proxy', syslog.option.LOG_PID | syslog.option.LOG_NDELAY, syslog.facility.LOG_USER);
  return new SyslogSink(syslog);
}

const MAX_IN_FLIGHT_BYTES = 256 * 1024;

/**
 * modern-syslog hands every message to the libuv thread pool (one thread under the launcher),
 * where syslog(3) blocks while the log daemon lags. The main thread never waits, but the pool's
 * queue would grow without bound: so only so many bytes are in flight, the rest waits in the
 * writer's bounded queue.
 */
export class SyslogSink implements Sink {
  readonly joins = false;
  onReady: () => void = () => {};
  held = 0;
  private waiting = false;

  constructor(private readonly syslog: ModernSyslog) {}

  write(data: string | Buffer, severity: number): WriteResult {
    if (this.held > 0 && this.held + data.length > MAX_IN_FLIGHT_BYTES) {
      this.waiting = true;
      return 'busy';
    }
    const line = typeof data === 'string' ? data.trimEnd() : data.subarray(0, data.at(-1) === 0x0a ? -1 : undefined);
    this.held += line.length;
    this.syslog.log(severity, line, () => {
      this.held -= line.length;
      if (this.waiting) {
        this.waiting = false;
        this.onReady();
      }
    });
    return 'written';
  }

  /** syslog(3) runs on the thread pool: nothing here can wait for it synchronously. */
  flushSync(): boolean {
    return this.held === 0;
  }
}

interface ModernSyslog {
  open(ident: string, option: number, facility: number): void;
  log(priority: number, message: string | Buffer, callback?: () => void): void;
  option: Record<'LOG_PID' | 'LOG_NDELAY', number>;
  facility: Record<'LOG_USER', number>;
}
