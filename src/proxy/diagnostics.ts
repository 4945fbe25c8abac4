import type { Session, SessionStats, StreamStats } from '../yamux/index.js';

export interface ProxyDiagnostics {
  state: string;
  clients: number;
  connectionsServed: number;
  session: SessionStats | null;
  streams: StreamStats[];
  memory: NodeJS.MemoryUsage;
}

/** The SIGUSR1 dump: one record for the session, one per stream, plus memory figures. */
export function diagnostics(state: string, session: Session | null, clients: number, served: number): ProxyDiagnostics {
  return {
    state,
    clients,
    connectionsServed: served,
    session: session?.stats() ?? null,
    streams: session?.streamStats() ?? [],
    memory: process.memoryUsage(),
  };
}
