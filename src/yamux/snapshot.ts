import type { Readable } from 'node:stream';
import { YamuxError } from './errors.js';
import type { StreamState } from './stream-state.js';

/**
 * A session's complete protocol state, for a live handover to another Session object (in this
 * process or another one) on the same link: JSON-serialisable, bytes in base64, times as wall
 * clock deadlines (Date.now()) so that another process can re-arm them. Bumped on any change a
 * reader of the previous version would misread; a reader refuses versions it does not know.
 */
export const SESSION_SNAPSHOT_VERSION = 1;

export interface SessionSnapshot {
  version: typeof SESSION_SNAPSHOT_VERSION;
  role: 'client' | 'server';
  startedAt: number;
  nextId: number;
  unackedOpens: number;
  /** Our streams whose SYN waits for an open slot, in order. */
  deferredOpens: number[];
  localGoAway: boolean;
  remoteGoAway: boolean;
  counters: { opened: number; accepted: number; rejected: number; bytesIn: number; bytesOut: number };
  windowBudget: number;
  /** Recently closed ids, oldest first. */
  recentlyClosed: number[];
  pings: PingsSnapshot;
  decoder: DecoderSnapshot;
  /** Control frames queued and not yet written (base64, concatenated), and how many are answers. */
  control: string;
  answers: number;
  streams: StreamSnapshot[];
}

export interface PingsSnapshot {
  nextValue: number;
  lastRttMs: number;
  /** Pings on the wire: value and the wall-clock time their timeout expires. */
  pending: { value: number; sentAt: number; deadline: number }[];
}

export interface DecoderSnapshot {
  /** The header bytes of a frame whose header is split across reads (base64, < 12 bytes). */
  partialHeader: string;
  /** The Data frame whose payload is being read: its header fields and bytes still to come. */
  payload: { type: number; flags: number; streamId: number; length: number; left: number } | null;
  /** The stream that payload goes to (null: it is skipped, the stream is gone). */
  current: number | null;
}

export interface StreamSnapshot {
  id: number;
  outbound: boolean;
  state: StreamState;
  startedAt: number;
  synPending: boolean;
  ackAwaited: boolean;
  sendWindow: number;
  recvWindow: number;
  windowSize: number;
  windowGrown: number;
  /** ms since the auto-tuning epoch started. */
  windowEpochAgeMs: number;
  localFin: boolean;
  remoteFin: boolean;
  finQueued: boolean;
  bytesIn: number;
  bytesOut: number;
  /** Payload received and not yet consumed by the stream's reader (base64). */
  received: string;
  /** Data accepted from the writer and not yet sent (base64). */
  unsent: string;
  timer: { deadline: number; message: string } | null;
  /** Inbound and still waiting in the accept queue. */
  unaccepted: boolean;
}

export class SnapshotError extends YamuxError {
  constructor(message: string) {
    super(message, 'ERR_YAMUX_SNAPSHOT');
  }
}

/** Refuses a snapshot this version cannot read, before anything is built from it. */
export function checkSnapshot(value: unknown): SessionSnapshot {
  const s = value as Partial<SessionSnapshot> | null;
  if (typeof s !== 'object' || s === null) throw new SnapshotError('session snapshot is not an object');
  if (s.version !== SESSION_SNAPSHOT_VERSION) {
    throw new SnapshotError(`session snapshot version ${String(s.version)} is not supported (this version reads ${SESSION_SNAPSHOT_VERSION})`);
  }
  if (!Array.isArray(s.streams) || typeof s.nextId !== 'number' || !s.decoder || !s.pings) {
    throw new SnapshotError('session snapshot is incomplete');
  }
  return s as SessionSnapshot;
}

/**
 * The bytes a Readable holds that nobody consumed yet, without consuming them (its buffer is a
 * linked list up to Node 20 and an array with a head index since Node 22).
 */
export function readableBytes(r: Readable): Buffer {
  const state = (r as unknown as { _readableState?: { buffer?: unknown; bufferIndex?: number; objectMode?: boolean } })._readableState;
  const buffer = state?.buffer;
  if (!buffer || r.readableLength === 0) return Buffer.alloc(0);
  let chunks: unknown[];
  if (Array.isArray(buffer)) chunks = buffer.slice(state.bufferIndex ?? 0);
  else chunks = [...(buffer as Iterable<unknown>)];
  return Buffer.concat(chunks.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array))));
}

export function toBase64(buf: Buffer | readonly Buffer[]): string {
  return (Buffer.isBuffer(buf) ? buf : Buffer.concat(buf as Buffer[])).toString('base64');
}

export function fromBase64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}
