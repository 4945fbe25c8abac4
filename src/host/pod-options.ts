import type { Loggers } from '../log/logger.js';
import type { ConnectionRate } from '../proxy/connection-admission.js';
import type { PodOptions } from '../proxy/pod.js';
import { podSettingsOf, type PodConfig } from '../proxy/pod-settings.js';

/** What every pod of one host runs with, on whichever thread it runs. */
export interface HostPodDefaults {
  /** Each pod's slice of an event-loop turn (PodOptions.turnSliceMs). */
  turnSliceMs?: number;
  /** The console rate every pod is held to (PodOptions.consoleRateCap). */
  consoleRateCap?: { perSecond: number; burst: number };
  /** The rate of new connections every pod is held to (PodOptions.connectionRate). */
  connectionRate?: ConnectionRate;
}

/** Just the defaults (a pod thread gets them by message: nothing else of the host's options may go along). */
export function podDefaultsOf(o: HostPodDefaults): HostPodDefaults {
  return {
    ...(o.turnSliceMs !== undefined ? { turnSliceMs: o.turnSliceMs } : {}),
    ...(o.consoleRateCap ? { consoleRateCap: o.consoleRateCap } : {}),
    ...(o.connectionRate ? { connectionRate: o.connectionRate } : {}),
  };
}

/**
 * The options of pod `id` in a host: its loggers are children of the thread's (with its sandbox
 * and level), its console shares the thread's read buffer and fills at most its share of the log.
 */
export function hostPodOptions(
  loggers: Loggers,
  defaults: HostPodDefaults,
  consoleReadBuffer: Buffer,
  id: string,
  config: PodConfig,
  openSerial?: PodOptions['openSerial'],
): PodOptions {
  const { proxy, agent, writer } = loggers;
  // The agent logger is only used by a console relay: no child for pods without one.
  const podLoggers: Loggers = { proxy: proxy.child({ sandbox: id }), agent: config.agentLogsSocket ? agent.child({ sandbox: id }) : agent, writer };
  if (config.logLevel) {
    podLoggers.proxy.level = config.logLevel;
    if (config.agentLogsSocket) podLoggers.agent.level = config.logLevel;
  }
  return {
    settings: podSettingsOf(config),
    loggers: podLoggers,
    logShare: id,
    consoleReadBuffer,
    ...podDefaultsOf(defaults),
    ...(openSerial ? { openSerial } : {}),
  };
}
