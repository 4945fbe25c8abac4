import type { DaemonOptions } from './command-line.js';
import { formatMode, type PodConfig } from '../proxy/pod-settings.js';

/** The body of `PUT /pods/ID` for a per-pod command line. The level is sent only when not the default. */
export function podConfigOf(o: DaemonOptions): PodConfig {
  return {
    listenSocket: o.listenSocket,
    ...(o.muxSocket !== undefined ? { muxSocket: o.muxSocket } : {}),
    ...(o.muxDevice !== undefined ? { muxDevice: o.muxDevice } : {}),
    baud: o.baud,
    ...(o.agentLogsSocket !== undefined ? { agentLogsSocket: o.agentLogsSocket } : {}),
    ...(o.logLevel !== 'warn' ? { logLevel: o.logLevel } : {}),
    heartbeat: o.heartbeatMs / 1000,
    drainTimeout: o.drainTimeoutMs / 1000,
    agentLogRate: o.agentLogRate,
    retryTimeout: o.retryTimeoutMs / 1000,
    listenMode: formatMode(o.listenMode),
  };
}
