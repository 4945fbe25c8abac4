import type { Session, SessionStats, StreamStats } from '../yamux/index.js';

export interface ProxyDiagnostics {
  state: string;
  clients: number;
  connectionsServed: number;
  /** Clients closed at once: the guest had sent GoAway, no stream could be opened, or too many waited. */
  clientsRefused: number;
  /** Clients that waited for the pod's connection rate (host mode), since the start; waiting now. */
  clientsDelayed: number;
  clientsWaiting: number;
  session: SessionStats | null;
  streams: StreamStats[];
  memory: NodeJS.MemoryUsage;
}

/** The SIGUSR1 dump: one record for the session, one per stream, plus memory figures. */
export function diagnostics(
  state: string,
  session: Session | null,
  clients: number,
  served: number,
  refused: number,
  admission: { delayed: number; waiting: number } | null,
): ProxyDiagnostics {
  return {
    state,
    clients,
    connectionsServed: served,
    clientsRefused: refused,
    clientsDelayed: admission?.delayed ?? 0,
    clientsWaiting: admission?.waiting ?? 0,
    session: session?.stats() ?? null,
    streams: session?.streamStats() ?? [],
    // Read only when used (the SIGUSR1 dump): a host lists a thousand pods at once.
    get memory() {
      return process.memoryUsage();
    },
  };
}
