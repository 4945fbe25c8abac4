import { logfmtValue } from './go-quote.js';

/** logrus's level names, which Kata's log parser expects. */
const LOGRUS_LEVEL: Record<string, string> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warning',
  error: 'error',
  fatal: 'fatal',
  panic: 'panic',
};

/**
 * Turns one pino JSON record into a logrus-style logfmt line: time, level, msg first, then the
 * other keys sorted; nested values flattened (an error to its message, an object to JSON).
 */
export function toLogfmt(record: Record<string, unknown>): string {
  const { time, level, msg, ...rest } = record;
  const parts = [
    `time=${logfmtValue(String(time ?? new Date().toISOString()))}`,
    `level=${LOGRUS_LEVEL[String(level)] ?? String(level)}`,
    `msg=${logfmtValue(msg === undefined ? '' : String(msg))}`,
  ];
  for (const key of Object.keys(rest).sort()) {
    parts.push(`${key}=${logfmtValue(stringify(rest[key]))}`);
  }
  return parts.join(' ');
}

function stringify(value: unknown): string {
  if (value === null || value === undefined) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'object' && 'message' in value && 'type' in value) {
    return String((value as { message: unknown }).message); // pino's serialized Error
  }
  return JSON.stringify(value);
}
