import type { Logger } from 'pino';
import { serveControl, type ControlServer } from '../host/control-server.js';
import { LocalPod } from '../host/hosted-pod.js';
import { podDetailView, podView } from '../host/pod-view.js';
import { podConfigOf } from './pod-config.js';
import type { Pod } from '../proxy/pod.js';
import type { PodConfig } from '../proxy/pod-settings.js';
import type { DaemonOptions } from './command-line.js';

/** The per-pod daemon's -control-socket: GET /pods, /pods/ID and /metrics for its one pod. */
export function serveDaemonControl(options: DaemonOptions, pod: Pod, log: Logger): Promise<ControlServer> {
  const id = options.sandbox ?? 'pod';
  // The level is shown even when it is the default: this daemon has no host's level to fall back on.
  const config: PodConfig = { ...podConfigOf(options), logLevel: options.logLevel };
  const hosted = new LocalPod(pod);
  return serveControl(
    {
      list: async () => [await podView(id, config, hosted)],
      get: (wanted) => (wanted === id ? podDetailView(id, config, hosted) : Promise.resolve(null)),
    },
    { path: options.controlSocket! },
    log,
  );
}
