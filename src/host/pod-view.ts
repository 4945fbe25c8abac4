import type { Pod, PodEnd, PodSnapshot } from '../proxy/pod.js';
import type { PodConfig } from '../proxy/pod-settings.js';
import type { SessionStats, StreamStats } from '../yamux/index.js';

/** A pod as GET /pods shows it. */
export interface PodView extends Omit<PodSnapshot, 'state'> {
  id: string;
  /** 'moving': the previous host process still runs it after a reload (see `moving`). */
  state: PodSnapshot['state'] | 'moving';
  settings: PodConfig;
  handle?: { pid: number; attached: boolean };
  /** The process that still runs the pod, why it has not moved yet, its counters as of then. */
  moving?: { pid: number; reason: string };
}

/** GET /pods/ID: the same plus the session and one entry per live stream (the SIGUSR1 dump). */
export interface PodDetailView extends PodView {
  session: SessionStats | null;
  streamDetail: StreamStats[];
}

export function podView(id: string, settings: PodConfig, pod: Pod | null, end?: PodEnd): PodView {
  const snap: PodSnapshot = pod?.snapshot() ?? {
    state: 'stopped', clients: 0, streams: 0, bytesIn: 0, bytesOut: 0, uptimeMs: 0, connectionsServed: 0, ...(end ? { end } : {}),
  };
  return { id, ...snap, settings };
}

export function podDetailView(id: string, settings: PodConfig, pod: Pod | null, end?: PodEnd): PodDetailView {
  const detail = pod?.detail();
  return { ...podView(id, settings, pod, end), session: detail?.session ?? null, streamDetail: detail?.streamDetail ?? [] };
}
