import { InvalidArgumentError, Option } from 'commander';
import { LOG_LEVELS } from '../log/logger.js';
import { parseNonNegative, parseOctalMode, parsePositiveInt, parseSeconds, SettingsError } from '../proxy/pod-settings.js';

/** A pod-settings check as a commander argument parser. */
function checked<T>(check: (name: string, value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return check('value', value);
    } catch (err) {
      throw err instanceof SettingsError ? new InvalidArgumentError(err.message.replace(/^value: /, '')) : err;
    }
  };
}

export const positiveInt = checked(parsePositiveInt);
export const nonNegative = checked(parseNonNegative);
export const seconds = checked(parseSeconds);
export const octalMode = checked(parseOctalMode);
/** A nice increment: 0 to 19 (the range of nice values above the default). */
export const niceIncrement = checked((name, value) => {
  const n = parseNonNegative(name, value);
  if (!Number.isInteger(n) || n > 19) throw new SettingsError(`${name}: must be an integer from 0 to 19`);
  return n;
});

export function logLevelOption(): Option {
  return new Option('--log <level>', 'log level').choices([...LOG_LEVELS, 'warning']);
}

/** -log-format and -log-sink, as the per-pod daemon and the host take them. */
export function logOutputOptions(): Option[] {
  return [
    new Option('--log-format <format>', 'log record format').choices(['logfmt', 'json']).default('logfmt'),
    new Option('--log-sink <sink>', 'where logs go (auto: syslog when stderr is /dev/null)').choices(['auto', 'stderr', 'syslog']).default('auto'),
  ];
}
