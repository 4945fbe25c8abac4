import type { Logger } from 'pino';

export interface Announcement {
  version: string;
  listenSocket: string;
  muxSocket?: string;
  muxDevice?: string;
  agentLogsSocket?: string;
  debug: boolean;
  logLevel: string;
}

/** The startup record the Go proxy writes (at info, so it shows with -log info or lower). */
export function announce(log: Logger, a: Announcement): void {
  log.info(
    {
      version: a.version,
      'listen-socket': a.listenSocket,
      ...(a.muxSocket ? { 'mux-socket': a.muxSocket } : {}),
      ...(a.muxDevice ? { 'mux-device': a.muxDevice } : {}),
      ...(a.agentLogsSocket ? { 'agent-logs-socket': a.agentLogsSocket } : {}),
      debug: a.debug,
      'log-level': a.logLevel,
    },
    'announce',
  );
}
