// What the command line asks for, parsed: shared by the parser (command-line.ts) and the host
// subcommands' part of it (host-commands.ts), which must not import each other.
import type { LogFormat, LogLevel, LogSink } from '../log/logger.js';

export interface DaemonOptions {
  listenSocket: string;
  muxSocket?: string;
  muxDevice?: string;
  baud: number;
  agentLogsSocket?: string;
  sandbox?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logSink: LogSink;
  debug: boolean;
  retryTimeoutMs: number;
  listenMode: number;
  drainTimeoutMs: number;
  agentLogRate: number;
  heartbeatMs: number;
  /** Serve the read-only control endpoints (GET /pods, /pods/ID, /metrics) for this pod here. */
  controlSocket?: string;
}

export const DEFAULT_CONTROL_SOCKET = '/run/kata-proxy/host.sock';
export const DEFAULT_STATE_FILE = '/run/kata-proxy/pods.json';

export interface HostOptions {
  controlSocket: string;
  stateFile: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logSink: LogSink;
  /** Console lines per second each pod relays at most (0: each pod's own setting alone). */
  podLogRate: number;
  /** Each pod's slice of an event-loop turn for its reads, ms (0: unpaced). */
  podSliceMs: number;
  /** New connections per second each pod serves at most (0: unlimited). */
  podConnRate: number;
  /** Threads that run the pods (0: the main thread). */
  podThreads: number;
  /** How much lower a pod thread's CPU priority is while its loop is busy (0: never). */
  podThreadNice: number;
  /** How often the pod threads' loads are compared to move a quiet pod off a hot thread, ms (0: never). */
  podRebalanceMs: number;
}

/** `pod add|rm|ls|show`; controlSocket unset: $KATA_PROXY_CONTROL_SOCKET or the default. */
export type PodCommand =
  | { action: 'add'; id: string; body: Record<string, unknown>; wait: boolean; controlSocket?: string }
  | { action: 'rm' | 'show'; id: string; controlSocket?: string }
  | { action: 'ls'; controlSocket?: string }
  /** `kata-proxy host upgrade`: the running host hands every pod to the version now installed. */
  | { action: 'upgrade'; controlSocket?: string };

export type ParsedCommand =
  | { kind: 'daemon'; options: DaemonOptions }
  | { kind: 'demo'; stay: boolean }
  | { kind: 'simulate-guest'; listen: string; console?: string }
  | { kind: 'install-units'; dir: string; execPath?: string; host: boolean }
  | { kind: 'host'; options: HostOptions }
  | { kind: 'pod'; command: PodCommand }
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string };
