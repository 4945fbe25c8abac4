import type { Duplex } from 'node:stream';
import { FrameType, HEADER_SIZE } from './constants.js';
import { encodeHeader } from './header.js';

/** Something with Data frames to send (a stream). The writer calls it once per turn. */
export interface FrameSource {
  /** Set by the writer while the source sits in its round-robin queue. */
  queued: boolean;
  /** Emit at most one Data frame through `writer.writeData`; return true if more is ready. */
  writeFrame(writer: FrameWriter): boolean;
}

/**
 * The session's single path to the link. Control frames (window updates, SYN/ACK/FIN/RST,
 * pings, GoAway) go first; then Data frames one per source in round robin, so a bulk stream
 * cannot starve a small RPC. Every frame's header and payload are written under one cork so
 * they leave in a single writev. When the link's write() returns false nothing more is
 * written until 'drain'.
 */
export class FrameWriter {
  private control: Buffer[] = [];
  private queuedAnswers = 0;
  private answersHeld = false;
  private ready: FrameSource[] = [];
  private readyHead = 0;
  private blocked = false;
  private scheduled = false;
  private stopped = false;
  /** A handover is taking the session's state: frames queue, nothing is written. */
  private held = false;
  private blockedTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly conn: Duplex,
    private readonly options: {
      /** Answers queued while the link is blocked, past which onAnswersHeld(true) fires. */
      maxQueuedAnswers: number;
      writeTimeout: number;
      onWriteTimeout: () => void;
      /** true: stop reading the peer until false (its answers are waiting for the link). */
      onAnswersHeld: (held: boolean) => void;
    },
  ) {
    conn.on('drain', this.onDrain);
  }

  get isBlocked(): boolean {
    return this.blocked;
  }

  get holdingAnswers(): boolean {
    return this.answersHeld;
  }

  /** Answers (frames the peer's own frames demand) waiting in the queue. */
  get pendingAnswers(): number {
    return this.queuedAnswers;
  }

  /**
   * Queues a control frame. `answer` marks frames the peer's own frames demand (ping ACKs, RSTs
   * for refused SYNs): a peer could ask for those faster than it reads them, so once too many
   * wait behind a blocked link the session stops reading the peer until the link drains (as
   * hashicorp's recvLoop blocks on its send queue). Our own frames are bounded by our streams.
   */
  sendControl(type: FrameType, flags: number, streamId: number, length: number, answer = false): void {
    if (this.stopped) return;
    this.control.push(encodeHeader(type, flags, streamId, length));
    if (answer && ++this.queuedAnswers >= this.options.maxQueuedAnswers && this.blocked) this.holdAnswers(true);
    this.schedule();
  }

  markReady(source: FrameSource): void {
    if (this.stopped || source.queued) return;
    source.queued = true;
    this.ready.push(source);
    this.schedule();
  }

  /** Only for FrameSource.writeFrame: one Data frame as header plus payload pieces. */
  writeData(streamId: number, flags: number, length: number, pieces: readonly Buffer[]): void {
    let ok = this.conn.write(encodeHeader(FrameType.Data, flags, streamId, length));
    for (const piece of pieces) ok = this.conn.write(piece);
    if (!ok) this.block();
  }

  /** Bypasses the queue: for the last GoAway of a session that is going down. */
  writeNow(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.conn.writable) this.conn.write(encodeHeader(type, flags, streamId, length));
  }

  /** Nothing is written until release(); frames keep queueing (a handover in progress). */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.schedule();
  }

  /** The control frames queued now (a handover takes them along), and how many are answers. */
  queuedControl(): { frames: Buffer[]; answers: number } {
    return { frames: [...this.control], answers: this.queuedAnswers };
  }

  /** Frames queued by the previous owner of the link, ahead of anything new. */
  restoreControl(frames: Buffer, answers: number): void {
    for (let at = 0; at < frames.length; at += HEADER_SIZE) this.control.push(frames.subarray(at, at + HEADER_SIZE));
    this.queuedAnswers = answers;
    if (this.control.length > 0) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.control = [];
    this.queuedAnswers = 0;
    this.answersHeld = false;
    for (let i = this.readyHead; i < this.ready.length; i++) this.ready[i]!.queued = false;
    this.ready = [];
    this.readyHead = 0;
    this.clearBlockedTimer();
    this.conn.off('drain', this.onDrain);
  }

  /** Flushes what is queued now (normally done on a microtask). */
  flush(): void {
    this.scheduled = false;
    if (this.stopped || this.blocked || this.held) return;
    this.conn.cork();
    try {
      while (!this.blocked && !this.stopped) {
        if (this.control.length > 0) {
          const frames = this.control;
          this.control = [];
          this.queuedAnswers = 0;
          for (const frame of frames) {
            if (!this.conn.write(frame)) this.block();
          }
          continue;
        }
        const source = this.nextReady();
        if (!source) break;
        source.queued = false;
        if (source.writeFrame(this) && !source.queued) {
          source.queued = true;
          this.ready.push(source);
        }
      }
    } finally {
      this.conn.uncork();
    }
  }

  private nextReady(): FrameSource | undefined {
    if (this.readyHead >= this.ready.length) {
      if (this.ready.length > 0) {
        this.ready = [];
        this.readyHead = 0;
      }
      return undefined;
    }
    const source = this.ready[this.readyHead++];
    // Compact now and then so the array does not grow with every turn.
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
    }
    return source;
  }

  private schedule(): void {
    if (this.scheduled || this.blocked || this.held) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private block(): void {
    if (this.blocked) return;
    this.blocked = true;
    if (this.options.writeTimeout > 0) {
      this.blockedTimer = setTimeout(this.onBlockedTooLong, this.options.writeTimeout);
      this.blockedTimer.unref();
    }
  }

  private readonly onBlockedTooLong = (): void => {
    this.blockedTimer = null;
    if (this.blocked && !this.stopped) this.options.onWriteTimeout();
  };

  private clearBlockedTimer(): void {
    if (this.blockedTimer) clearTimeout(this.blockedTimer);
    this.blockedTimer = null;
  }

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.clearBlockedTimer();
    this.flush();
    if (!this.blocked && !this.stopped) this.holdAnswers(false);
  };

  private holdAnswers(held: boolean): void {
    if (this.answersHeld === held) return;
    this.answersHeld = held;
    this.options.onAnswersHeld(held);
  }

  /** Sources waiting for their turn (for the write-timeout handler). */
  waitingSources(): FrameSource[] {
    return this.ready.slice(this.readyHead);
  }
}
