// One pod's settings: the per-pod command line and the host's PUT /pods/ID body share these
// names, defaults and checks, so a value is valid in one exactly when it is valid in the other.

import { LOG_LEVELS, type LogLevel } from '../log/logger.js';

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

export class SettingsError extends Error {}

/** A pod's settings as JSON shows them: the per-pod flags in camelCase, seconds as on the command line. */
export interface PodConfig {
  listenSocket: string;
  muxSocket?: string;
  muxDevice?: string;
  baud: number;
  agentLogsSocket?: string;
  /** Unset: the pod logs at the level of the process that runs it. */
  logLevel?: LogLevel;
  heartbeat: number;
  drainTimeout: number;
  agentLogRate: number;
  retryTimeout: number;
  /** Octal text, e.g. "0660". */
  listenMode: string;
}

export const POD_DEFAULTS = {
  baud: 115200,
  heartbeat: 1,
  drainTimeout: 5,
  agentLogRate: 0,
  retryTimeout: 30,
  listenMode: '0660',
} as const;

/** What a Pod runs with (milliseconds, numeric mode). */
export interface PodSettings {
  listenSocket: string;
  /** A listening socket inherited from systemd, used instead of creating listenSocket. */
  inheritedFd?: number;
  listenMode: number;
  muxSocket?: string;
  muxDevice?: { path: string; baudRate: number };
  agentLogsSocket?: string;
  agentLogRate: number;
  retryTimeoutMs: number;
  drainTimeoutMs: number;
  heartbeatMs: number;
}

export function podSettingsOf(config: PodConfig): PodSettings {
  return {
    listenSocket: config.listenSocket,
    listenMode: parseOctalMode('listenMode', config.listenMode),
    ...(config.muxSocket !== undefined ? { muxSocket: config.muxSocket } : {}),
    ...(config.muxDevice !== undefined ? { muxDevice: { path: config.muxDevice, baudRate: config.baud } } : {}),
    ...(config.agentLogsSocket !== undefined ? { agentLogsSocket: config.agentLogsSocket } : {}),
    agentLogRate: config.agentLogRate,
    retryTimeoutMs: config.retryTimeout * 1000,
    drainTimeoutMs: config.drainTimeout * 1000,
    heartbeatMs: config.heartbeat * 1000,
  };
}

const CONFIG_FIELDS = new Set([
  'listenSocket', 'muxSocket', 'muxDevice', 'baud', 'agentLogsSocket', 'logLevel',
  'heartbeat', 'drainTimeout', 'agentLogRate', 'retryTimeout', 'listenMode',
]);

/** Checks a PUT body and fills in the defaults. Throws SettingsError naming the first bad field. */
export function podConfigFromJson(body: unknown): PodConfig {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new SettingsError('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!CONFIG_FIELDS.has(key)) throw new SettingsError(`unknown field "${key}"`);
  if (b.listenSocket === undefined) throw new SettingsError('listenSocket is required');
  if ((b.muxSocket === undefined) === (b.muxDevice === undefined)) {
    throw new SettingsError('exactly one of muxSocket and muxDevice is required');
  }
  const text = (name: string): string => {
    if (typeof b[name] !== 'string') throw new SettingsError(`${name} must be a string`);
    return b[name] as string;
  };
  const number = (name: string, parse: (flag: string, value: string) => number, fallback: number): number => {
    const v = b[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' && typeof v !== 'string') throw new SettingsError(`${name} must be a number`);
    return parse(name, String(v));
  };
  const config: PodConfig = {
    listenSocket: parseSocketPath('listenSocket', text('listenSocket')),
    baud: number('baud', parsePositiveInt, POD_DEFAULTS.baud),
    heartbeat: number('heartbeat', parseSeconds, POD_DEFAULTS.heartbeat),
    drainTimeout: number('drainTimeout', parseSeconds, POD_DEFAULTS.drainTimeout),
    agentLogRate: number('agentLogRate', parseNonNegative, POD_DEFAULTS.agentLogRate),
    retryTimeout: number('retryTimeout', parseSeconds, POD_DEFAULTS.retryTimeout),
    listenMode: b.listenMode === undefined ? POD_DEFAULTS.listenMode : formatMode(parseOctalMode('listenMode', text('listenMode'))),
  };
  if (b.muxSocket !== undefined) config.muxSocket = parseSocketPath('muxSocket', text('muxSocket'));
  if (b.muxDevice !== undefined) config.muxDevice = parseNonEmpty('muxDevice', text('muxDevice'));
  if (b.agentLogsSocket !== undefined) config.agentLogsSocket = parseSocketPath('agentLogsSocket', text('agentLogsSocket'));
  if (b.logLevel !== undefined) config.logLevel = parseLogLevel('logLevel', text('logLevel'));
  return config;
}

/** Same settings, whatever the order of fields or whether defaults were spelled out. */
export function sameConfig(a: PodConfig, b: PodConfig): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof PodConfig>;
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}

/** Pod ids go into URL paths and log records: the characters of Kata sandbox ids. */
export function parsePodId(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(value)) throw new SettingsError(`invalid pod id "${value}"`);
  return value;
}

/** A socket argument is a plain path or a unix:// URI (`unix:///run/vc/sbs/ID/proxy.sock`). */
export function parseSocketPath(name: string, value: string): string {
  if (value.trim() === '') throw new SettingsError(`${name}: empty socket path`);
  let socketPath = value;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value);
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'unix') {
      throw new SettingsError(`${name}: unsupported scheme "${scheme[1]}" in ${value} (only unix:// or a plain path)`);
    }
    socketPath = value.slice(scheme[0].length);
    if (socketPath === '') throw new SettingsError(`${name}: ${value} has no path`);
  }
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new SettingsError(`${name}: socket path is ${bytes} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} a Unix socket allows`);
  }
  return socketPath;
}

export function parseNonEmpty(name: string, value: string): string {
  if (value.trim() === '') throw new SettingsError(`${name}: empty value`);
  return value;
}

export function parsePositiveInt(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n <= 0) throw new SettingsError(`${name}: must be a positive integer`);
  return n;
}

export function parseNonNegative(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new SettingsError(`${name}: must be a number >= 0`);
  return n;
}

/** Node turns a timer longer than 2^31-1 ms into 1 ms: a 30-day heartbeat would ping every millisecond. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration in seconds, as a timer can hold it. */
export function parseSeconds(name: string, value: string): number {
  const n = parseNonNegative(name, value);
  if (n > MAX_SECONDS) throw new SettingsError(`${name}: must be at most ${MAX_SECONDS} seconds`);
  return n;
}

export function parseOctalMode(name: string, value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new SettingsError(`${name}: must be an octal file mode such as 0660`);
  return parseInt(value, 8);
}

export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

export function parseLogLevel(name: string, value: string): LogLevel {
  const level = value === 'warning' ? 'warn' : value;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new SettingsError(`${name}: must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}
