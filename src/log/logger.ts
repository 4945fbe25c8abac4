import { fstatSync, statSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import { FdSink } from './fd-sink.js';
import { toLogfmt } from './logfmt.js';
import { LogWriter, type Priority, type Sink, type WriteResult } from './log-writer.js';
import { openSyslog, SEVERITY } from './syslog-sink.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal', 'panic'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'logfmt';
export type LogSink = 'stderr' | 'syslog' | 'auto';

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  sink: LogSink;
  sandbox?: string;
  /** Where stderr records go (tests: written at once, never dropped); default fd 2, through the non-blocking writer. */
  stderr?: { write(line: string): unknown };
  /** Syslog socket to require (tests); default /dev/log. */
  syslogSocket?: string;
  /** Where records go instead of `sink` (a host's pod thread: to the main thread's writer). */
  to?: Sink;
}

/** The daemon's loggers: records from the proxy itself and records relayed from the guest. */
export interface Loggers {
  proxy: Logger;
  agent: Logger;
  /** The writer behind them (shared by every pod's loggers in one process). */
  writer: LogWriter;
}

/**
 * The process-wide writer for these options: stderr, or syslog when asked (or when stderr is
 * /dev/null, as under the Kata runtime). `warning` says why syslog was not possible.
 */
function createLogWriter(options: LoggerOptions): { writer: LogWriter; warning?: string } {
  if (options.to) return { writer: new LogWriter(options.to) };
  const stderr = () => (options.stderr ? functionSink(options.stderr) : new FdSink(2));
  const wantSyslog = options.sink === 'syslog' || (options.sink === 'auto' && stderrIsDevNull());
  if (!wantSyslog) return { writer: new LogWriter(stderr()) };
  const syslog = openSyslog(options.syslogSocket);
  if (typeof syslog === 'string') return { writer: new LogWriter(stderr()), warning: `syslog unavailable (${syslog}); logging to stderr` };
  return { writer: new LogWriter(syslog) };
}

/**
 * Creates the pino loggers and their writer. Every record carries name=kata-proxy, pid, source
 * and (when given) sandbox. `source` is bound once per child of a root without it, so no line has
 * it twice. Pods in one process take children of these (with their sandbox): one writer serves
 * them all, and its drop summaries come from this proxy logger.
 */
export function createLoggers(options: LoggerOptions): Loggers {
  const made = createLogWriter(options);
  const root = (priority: Priority) =>
    pino<'panic'>(
      {
        name: 'kata-proxy',
        level: options.level,
        customLevels: { panic: 70 },
        base: { pid: process.pid, ...(options.sandbox ? { sandbox: options.sandbox } : {}) },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      destination(made.writer, priority, options.format),
    );
  // The custom 'panic' level only matters as a threshold; callers see plain pino Loggers.
  const loggers = {
    proxy: root('proxy').child({ source: 'proxy' }) as unknown as Logger,
    agent: root('agent').child({ source: 'agent' }) as unknown as Logger,
    writer: made.writer,
  };
  made.writer.reportDropsTo((r) => loggers.proxy.warn({ dropped: r.dropped, 'agent-lines': r.agentLines, reason: r.reason }, 'log records dropped'));
  if (made.warning) loggers.proxy.warn(made.warning);
  return loggers;
}

/** A record the writer would refuse is dropped before it is turned into logfmt and copied. */
function destination(writer: LogWriter, priority: Priority, format: LogFormat): DestinationStream {
  return {
    write: (line: string) => {
      if (!writer.admit(priority, line.length)) return;
      const severity = SEVERITY[/^\{"level":"(\w+)"/.exec(line)?.[1] ?? 'info'] ?? 6;
      writer.write(format === 'json' ? line : `${toLogfmt(JSON.parse(line))}\n`, severity, priority);
    },
  };
}

/** A test's function: takes every record at once. */
function functionSink(target: { write(line: string): unknown }): Sink {
  return {
    joins: false,
    held: 0,
    onReady: () => {},
    write: (data: string | Buffer): WriteResult => {
      target.write(data.toString());
      return 'written';
    },
    flushSync: () => true,
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
