import type { Logger } from 'pino';
import { serveControl, type ControlServer } from '../host/control-server.js';
import { podDetailView, podView } from '../host/pod-view.js';
import type { Pod } from '../proxy/pod.js';
import { formatMode, type PodConfig } from '../proxy/pod-settings.js';
import type { DaemonOptions } from './command-line.js';

/** The per-pod daemon's -control-socket: GET /pods, /pods/ID and /metrics for its one pod. */
export function serveDaemonControl(options: DaemonOptions, pod: Pod, log: Logger): Promise<ControlServer> {
  const id = options.sandbox ?? 'pod';
  const config = daemonConfig(options);
  return serveControl(
    {
      list: () => [podView(id, config, pod)],
      get: (wanted) => (wanted === id ? podDetailView(id, config, pod) : null),
    },
    { path: options.controlSocket! },
    log,
  );
}

function daemonConfig(o: DaemonOptions): PodConfig {
  return {
    listenSocket: o.listenSocket,
    ...(o.muxSocket ? { muxSocket: o.muxSocket } : {}),
    ...(o.muxDevice ? { muxDevice: o.muxDevice } : {}),
    baud: o.baud,
    ...(o.agentLogsSocket ? { agentLogsSocket: o.agentLogsSocket } : {}),
    logLevel: o.logLevel,
    heartbeat: o.heartbeatMs / 1000,
    drainTimeout: o.drainTimeoutMs / 1000,
    agentLogRate: o.agentLogRate,
    retryTimeout: o.retryTimeoutMs / 1000,
    listenMode: formatMode(o.listenMode),
  };
}
