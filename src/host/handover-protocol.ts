// The messages a host and its successor exchange over the child's IPC channel during a reload.
// Sockets travel as handles, one per message ('handle'), before the 'pod' message naming them.
import type { PodEnd } from '../proxy/pod.js';
import { POD_STATE_VERSION, type PodState } from '../proxy/pod-handover.js';
import type { PodConfig } from '../proxy/pod-settings.js';
import { SESSION_SNAPSHOT_VERSION } from '../yamux/index.js';
import type { PodView } from './pod-view.js';
import type { HandleRecord, PodRecord } from './state-file.js';

/** Set in the successor's environment: it takes its pods from its parent instead of the state file. */
export const HANDOVER_ENV = 'KATA_PROXY_HANDOVER';

export const HANDOVER_PROTOCOL_VERSION = 1;

/** The first descriptor of the sockets a successor inherits at its start (0-2 stdio, 3 IPC). */
export const FIRST_INHERITED_FD = 4;

/** The formats a host writes; its successor refuses the reload unless it reads every one. */
export interface Formats {
  protocol: number;
  pod: number;
  session: number;
}

export const FORMATS: Formats = { protocol: HANDOVER_PROTOCOL_VERSION, pod: POD_STATE_VERSION, session: SESSION_SNAPSHOT_VERSION };

export interface PodMessage {
  id: string;
  config: PodConfig;
  handle?: HandleRecord;
  end?: PodEnd;
  state?: PodState;
  /** Index of the attached handle's connection among the pod's handles. */
  link?: number;
  /**
   * Per handle: the descriptor the successor inherited it as at its start, or null when it
   * comes in a 'handle' message (a socket accepted since).
   */
  fds: (number | null)[];
}

/** A pod that stays with the running host for now: its record (for the state file), how it looks, why it stays. */
export interface RemainingPod {
  record: PodRecord;
  view: PodView;
  reason: string;
}

/** From the running host to its successor. */
export type ToSuccessor =
  | { t: 'offer'; formats: Formats; inherited: number }
  | { t: 'handle'; id: string; index: number }
  | { t: 'pod'; pod: PodMessage }
  | { t: 'late'; id: string }
  | { t: 'late-control' }
  | { t: 'control' }
  /** `remaining`: pods that stay with the running host for now (listed and kept in the state file meanwhile). */
  | { t: 'done'; moved: number; remaining: RemainingPod[] }
  /** After each later attempt: the pods the previous host still runs (an empty list: none). */
  | { t: 'remaining'; pods: RemainingPod[] }
  | { t: 'main' };

/** From the successor back. */
export type FromSuccessor =
  /** `inodes`: of each descriptor it inherited, in order (-1: none there); absent from a version before pod threads. */
  | { t: 'accept'; inodes?: number[] }
  | { t: 'refuse'; reason: string }
  | { t: 'took'; id: string }
  | { t: 'failed'; id: string; reason: string }
  | { t: 'serving' }
  | { t: 'ready' };

/** Why the successor cannot read what this host writes, or null when it can. */
export function refusalOf(offered: Formats): string | null {
  const mine = FORMATS;
  for (const key of ['protocol', 'pod', 'session'] as const) {
    if (offered[key] !== mine[key]) {
      return `the new version reads ${key} state version ${mine[key]}, the running host writes version ${String(offered[key])}`;
    }
  }
  return null;
}
