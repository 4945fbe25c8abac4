import type { PodEnd, PodSnapshot } from '../proxy/pod.js';
import type { PodConfig } from '../proxy/pod-settings.js';
import type { SessionStats, StreamStats } from '../yamux/index.js';
import type { HostedPod } from './hosted-pod.js';

/** A pod as GET /pods shows it. */
export interface PodView extends Omit<PodSnapshot, 'state'> {
  id: string;
  /** 'moving': the previous host process still runs it after a reload (see `moving`). */
  state: PodSnapshot['state'] | 'moving';
  settings: PodConfig;
  handle?: { pid: number; attached: boolean };
  /** The pod thread that runs it (host mode with pod threads). */
  thread?: number;
  /** The process that still runs the pod, why it has not moved yet, its counters as of then. */
  moving?: { pid: number; reason: string };
}

/** GET /pods/ID: the same plus the session and one entry per live stream (the SIGUSR1 dump). */
export interface PodDetailView extends PodView {
  session: SessionStats | null;
  streamDetail: StreamStats[];
}

export async function podView(id: string, settings: PodConfig, pod: HostedPod | null, end?: PodEnd): Promise<PodView> {
  const snap: PodSnapshot = (await pod?.snapshot()) ?? {
    state: 'stopped', clients: 0, streams: 0, bytesIn: 0, bytesOut: 0, uptimeMs: 0, connectionsServed: 0, ...(end ? { end } : {}),
  };
  return { id, ...snap, settings };
}

export async function podDetailView(id: string, settings: PodConfig, pod: HostedPod | null, end?: PodEnd): Promise<PodDetailView> {
  const detail = await pod?.detail();
  if (!detail) return { ...(await podView(id, settings, null, end)), session: null, streamDetail: [] };
  const { session, streamDetail, ...snapshot } = detail;
  return { id, ...snapshot, settings, session, streamDetail };
}
