import { fstatSync, statSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import { toLogfmt } from './logfmt.js';
import { openSyslog, SEVERITY, type SyslogSink } from './syslog-sink.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal', 'panic'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'logfmt';
export type LogSink = 'stderr' | 'syslog' | 'auto';

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  sink: LogSink;
  sandbox?: string;
  /** Where stderr records go (tests); default fd 2, written synchronously so no line is lost. */
  stderr?: { write(line: string): unknown };
  /** Syslog socket to require (tests); default /dev/log. */
  syslogSocket?: string;
}

/** The daemon's loggers: records from the proxy itself and records relayed from the guest. */
export interface Loggers {
  proxy: Logger;
  agent: Logger;
}

/**
 * Creates the pino loggers. Every record carries name=kata-proxy, pid, source and (when given)
 * sandbox. `source` is bound once per child of a root without it, so no line has it twice.
 */
export function createLoggers(options: LoggerOptions): Loggers {
  const { destination, warning } = makeDestination(options);
  const root = pino<'panic'>(
    {
      name: 'kata-proxy',
      level: options.level,
      customLevels: { panic: 70 },
      base: { pid: process.pid, ...(options.sandbox ? { sandbox: options.sandbox } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  // The custom 'panic' level only matters as a threshold; callers see plain pino Loggers.
  const loggers = {
    proxy: root.child({ source: 'proxy' }) as unknown as Logger,
    agent: root.child({ source: 'agent' }) as unknown as Logger,
  };
  if (warning) loggers.proxy.warn(warning);
  return loggers;
}

function makeDestination(options: LoggerOptions): { destination: DestinationStream; warning?: string } {
  const stderr = options.stderr ?? pino.destination({ fd: 2, sync: true });
  const format = (line: string) => (options.format === 'json' ? line : `${toLogfmt(JSON.parse(line))}\n`);
  const wantSyslog = options.sink === 'syslog' || (options.sink === 'auto' && stderrIsDevNull());
  if (!wantSyslog) return { destination: { write: (line: string) => void stderr.write(format(line)) } };

  const syslog: SyslogSink | string = openSyslog(options.syslogSocket);
  if (typeof syslog === 'string') {
    return {
      destination: { write: (line: string) => void stderr.write(format(line)) },
      warning: `syslog unavailable (${syslog}); logging to stderr`,
    };
  }
  return {
    destination: {
      write: (line: string) => {
        const formatted = format(line);
        const label = /"level":"(\w+)"/.exec(line)?.[1] ?? 'info';
        syslog.write(SEVERITY[label] ?? 6, formatted.trimEnd());
      },
    },
  };
}

/** Under the Kata runtime stdio is /dev/null: then only syslog keeps the logs. */
function stderrIsDevNull(): boolean {
  try {
    const err = fstatSync(2);
    const devNull = statSync('/dev/null');
    return err.isCharacterDevice() && err.rdev === devNull.rdev;
  } catch {
    return false;
  }
}
