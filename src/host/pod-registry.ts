import type { PodConfig } from '../proxy/pod-settings.js';
import type { AttachLink } from './host.js';
import type { HostStats } from './metrics.js';
import type { PodDetailView, PodView } from './pod-view.js';

/** What the control socket serves; without the write operations it is read-only (per-pod daemon). */
export interface PodRegistry {
  list(): Promise<PodView[]>;
  get(id: string): Promise<PodDetailView | null>;
  /** Pod threads and memory reclaims, for GET /metrics (host mode). */
  hostStats?(): HostStats;
  put?(id: string, config: PodConfig, options: { waitServing?: boolean; handlePid?: number }): Promise<{ status: 200 | 201; pod: PodView }>;
  remove?(id: string): Promise<PodView>;
  attach?(id: string, pid: number, link: AttachLink): Promise<void>;
  /** POST /pods/ID/move[?thread=N]: to another pod thread; the pod as it is then. */
  move?(id: string, to?: number): Promise<PodView>;
}

/** A per-pod command line as the host reads it (`POST /pods`): see HostOperations.readCommandLine. */
export type CommandLineVerdict =
  | { kind: 'pod'; id: string; config: PodConfig }
  /** The usage error the per-pod daemon would print (exit status 2), verbatim. */
  | { kind: 'usage'; message: string }
  /** Help, version or a subcommand: nothing to register; the handle runs it locally. */
  | { kind: 'not-a-pod' };

export type CommandLineReader = (argv: string[], env: Record<string, string>) => CommandLineVerdict;
