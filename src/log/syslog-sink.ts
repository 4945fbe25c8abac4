import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

/** What the logger needs from syslog(3). */
export interface SyslogSink {
  write(severity: number, line: string): void;
}

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
    return `the modern-syslog module is not available: ${(err as Error).message}`;
  }
  syslog.open('kata-proxy', syslog.option.LOG_PID | syslog.option.LOG_NDELAY, syslog.facility.LOG_USER);
  return {
    write: (severity, line) => syslog.log(severity, line),
  };
}

interface ModernSyslog {
  open(ident: string, option: number, facility: number): void;
  log(priority: number, message: string, callback?: () => void): void;
  option: Record<'LOG_PID' | 'LOG_NDELAY', number>;
  facility: Record<'LOG_USER', number>;
}
