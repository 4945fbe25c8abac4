import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { Flag, FrameType, GoAwayCode, INITIAL_STREAM_WINDOW, flagNames, typeName } from './constants.js';
import { resolveConfig, type YamuxConfig, type YamuxLogLevel } from './config.js';
import { FrameDecoder, type FrameHandler } from './decoder.js';
import {
  ConnectionLostError,
  GoAwayError,
  ProtocolError,
  SessionClosedError,
  TimeoutError,
  WriteTimeoutError,
  YamuxError,
} from './errors.js';
import { FrameWriter } from './frame-writer.js';
import type { FrameHeader } from './header.js';
import type { ReadPacer } from './pacer.js';
import { PingTracker } from './ping-tracker.js';
import { RecentIds } from './recent-ids.js';
import { checkSnapshot, fromBase64, SESSION_SNAPSHOT_VERSION, SnapshotError, toBase64, type SessionSnapshot } from './snapshot.js';
import { Stream, type StreamHost, type StreamStats } from './stream.js';

export interface SessionOptions {
  /** 'client' opens odd stream ids, 'server' even ones. */
  role: 'client' | 'server';
  config?: Partial<YamuxConfig>;
  /** Inbound streams are accepted at once and handed here; without it they wait for accept(). */
  onStream?: (stream: Stream) => void;
  /** Answer every inbound SYN with RST (a session that never accepts streams). */
  rejectInbound?: boolean;
  /**
   * With rejectInbound: the peer may open this many streams; the next one is a protocol error
   * (for a peer that is known never to open any). Unbounded by default, as in hashicorp.
   */
  maxRejectedStreams?: number;
  /** Shares out the reading of the link with other readers (see ReadPacer); unpaced by default. */
  pacer?: ReadPacer;
}

/**
 * What the engine logs once per frame the peer chooses to send: a peer can repeat these at
 * will, so a logger facing an untrusted peer should aggregate them.
 */
export const PEER_DRIVEN_MESSAGES: ReadonlySet<string> = new Set([
  'frame for unknown stream discarded',
  'inbound stream refused',
  'reading paused: the peer is not reading our answers',
]);

export interface SessionStats {
  role: 'client' | 'server';
  ageMs: number;
  streams: number;
  opened: number;
  accepted: number;
  rejected: number;
  bytesIn: number;
  bytesOut: number;
  localGoAway: boolean;
  remoteGoAway: boolean;
  linkBlocked: boolean;
  /** The peer is not read while answers to its frames wait for the link. */
  readingPaused: boolean;
}

/** Answers (pongs, RSTs) waiting behind a blocked link, past which the peer is not read. */
const MAX_QUEUED_ANSWERS = 1024;
/** How long the last GoAway may take to leave before the link is cut. */
const GOAWAY_LINGER_MS = 1000;

/** A yamux session over one reliable byte stream (Unix socket, serial line). */
export class Session extends EventEmitter implements StreamHost, FrameHandler {
  readonly config: YamuxConfig;
  readonly writer: FrameWriter;
  readonly role: 'client' | 'server';
  private readonly streamTable = new Map<number, Stream>();
  private readonly decoder = new FrameDecoder(this);
  private readonly recentlyClosed = new RecentIds(4096);
  private readonly pings: PingTracker;
  private readonly acceptQueue: Stream[] = [];
  private readonly acceptWaiters: { resolve: (s: Stream) => void; reject: (e: Error) => void }[] = [];
  private readonly deferredOpens: Stream[] = [];
  private startedAt = Date.now();
  private suspended = false;
  private nextId: number;
  private unackedOpens = 0;
  private current: Stream | null = null; // target of the Data frame being decoded
  private localGoAway = false;
  private remoteGoAway = false;
  private closing: { resolve: () => void; timer: NodeJS.Timeout | null } | null = null;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private ended = false;
  /** Reading stopped until the pacer's next slice. */
  private pacedOut = false;
  private error: Error | null = null;
  private counters = { opened: 0, accepted: 0, rejected: 0, bytesIn: 0, bytesOut: 0 };
  private windowBudget: number;

  constructor(
    private readonly conn: Duplex,
    private readonly options: SessionOptions,
  ) {
    super();
    this.config = resolveConfig(options.config);
    this.role = options.role;
    this.nextId = options.role === 'client' ? 1 : 2;
    this.writer = new FrameWriter(conn, {
      maxQueuedAnswers: MAX_QUEUED_ANSWERS,
      writeTimeout: this.config.connectionWriteTimeout,
      onWriteTimeout: () => this.onWriteTimeout(),
      onAnswersHeld: (held) => this.holdReading(held),
    });
    this.pings = new PingTracker((value) => this.writer.sendControl(FrameType.Ping, Flag.SYN, 0, value));
    conn.on('data', this.onData);
    conn.on('end', this.onLinkEnd);
    conn.on('close', this.onLinkEnd);
    conn.on('error', this.onLinkError);
    if (this.config.enableKeepAlive) this.startKeepAlive();
    this.windowBudget = this.config.autoTuneBudget;
  }

  /**
   * A session carried on from a snapshot another Session object took of the same link (in this
   * process, or in another one that passed the link's descriptor): stream ids, windows, queued
   * bytes, the partial frame being read and the timers' deadlines continue where it stopped.
   * Throws SnapshotError (before touching `conn`) on a snapshot this version cannot read.
   */
  static adopt(conn: Duplex, options: SessionOptions, snapshot: unknown): Session {
    const snap = checkSnapshot(snapshot);
    if (snap.role !== options.role) throw new SnapshotError(`snapshot of a ${snap.role} session adopted as ${options.role}`);
    const session = new Session(conn, options);
    session.restore(snap);
    return session;
  }

  /**
   * Stops everything that would read the link or write to it: input is no longer decoded (the
   * caller stops the link's reading at its source), frames queue without being written, timers
   * stop with their deadlines kept. resume() undoes it; snapshot() and release() follow it.
   */
  suspend(): void {
    if (this.ended || this.suspended) return;
    this.suspended = true;
    this.conn.off('data', this.onData);
    this.writer.hold();
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
    this.pings.disarm();
    for (const stream of this.streamTable.values()) stream.pauseTimer();
  }

  resume(): void {
    if (this.ended || !this.suspended) return;
    this.suspended = false;
    this.conn.on('data', this.onData);
    this.pings.rearm();
    for (const stream of this.streamTable.values()) stream.resumeTimer();
    if (this.config.enableKeepAlive) this.startKeepAlive();
    this.writer.release();
  }

  /** The state of a suspended session (writes flushed or not: queued frames are part of it). */
  snapshot(): SessionSnapshot {
    if (!this.suspended) throw new SnapshotError('suspend() the session before taking its snapshot');
    if (this.closing) throw new SnapshotError('the session is closing');
    const unaccepted = new Set(this.acceptQueue);
    const control = this.writer.queuedControl();
    return {
      version: SESSION_SNAPSHOT_VERSION,
      role: this.role,
      startedAt: this.startedAt,
      nextId: this.nextId,
      unackedOpens: this.unackedOpens,
      deferredOpens: this.deferredOpens.map((s) => s.id),
      localGoAway: this.localGoAway,
      remoteGoAway: this.remoteGoAway,
      counters: { ...this.counters },
      windowBudget: this.windowBudget,
      recentlyClosed: this.recentlyClosed.ids(),
      pings: this.pings.snapshot(),
      decoder: { ...this.decoder.snapshot(), current: this.current?.id ?? null },
      control: toBase64(control.frames),
      answers: control.answers,
      streams: [...this.streamTable.values()].map((s) => s.snapshot(unaccepted.has(s))),
    };
  }

  /**
   * After a handover: this object lets go of the link without a frame or an event, and its
   * streams go quiet; the link itself stays open (its new owner uses it).
   */
  release(): void {
    if (this.ended) return;
    this.ended = true;
    this.error = new SessionClosedError();
    this.conn.off('data', this.onData);
    this.conn.off('end', this.onLinkEnd);
    this.conn.off('close', this.onLinkEnd);
    this.conn.off('error', this.onLinkError);
    this.writer.stop();
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    if (this.closing?.timer) clearTimeout(this.closing.timer);
    this.pings.disarm();
    for (const stream of this.streamTable.values()) stream.abandon();
    this.streamTable.clear();
    this.acceptQueue.length = 0;
    this.deferredOpens.length = 0;
  }

  /** The error that ended the session, or null while it lives (StreamHost). */
  get terminalError(): Error | null {
    return this.ended ? (this.error ?? new SessionClosedError()) : null;
  }

  get closed(): boolean {
    return this.ended;
  }

  get streamCount(): number {
    return this.streamTable.size;
  }

  streams(): IterableIterator<Stream> {
    return this.streamTable.values();
  }

  /** Opens a stream: SYN is sent at once (or when fewer than acceptBacklog opens await ACK). */
  open(): Stream {
    if (this.ended) throw this.terminalError!;
    if (this.localGoAway) throw new GoAwayError('session is going away: no new streams');
    if (this.remoteGoAway) throw new GoAwayError('peer sent GoAway: no new streams');
    const id = this.nextId;
    if (id > 0xffff_ffff) throw new YamuxError('stream ids exhausted', 'ERR_YAMUX_STREAMS_EXHAUSTED');
    this.nextId += 2;
    const stream = new Stream(id, this, true);
    this.streamTable.set(id, stream);
    this.counters.opened++;
    if (this.unackedOpens < this.config.acceptBacklog) {
      this.unackedOpens++;
      stream.sendOpenFrame();
    } else {
      this.deferredOpens.push(stream);
    }
    return stream;
  }

  /** The next inbound stream (when no onStream handler is set). */
  accept(): Promise<Stream> {
    const stream = this.acceptQueue.shift();
    if (stream) {
      this.acknowledge(stream);
      return Promise.resolve(stream);
    }
    if (this.ended) return Promise.reject(this.terminalError);
    return new Promise((resolve, reject) => this.acceptWaiters.push({ resolve, reject }));
  }

  /** Round-trip time in milliseconds. */
  ping(timeoutMs = this.config.connectionWriteTimeout || 10_000): Promise<number> {
    if (this.ended) return Promise.reject(this.terminalError);
    return this.pings.ping(timeoutMs);
  }

  /** Tells the peer no new streams will be accepted; live streams carry on. */
  goAway(code: GoAwayCode = GoAwayCode.Normal): void {
    if (this.ended || this.localGoAway) return;
    this.localGoAway = true;
    this.writer.sendControl(FrameType.GoAway, 0, 0, code);
  }

  /**
   * Graceful close: GoAway, let live streams finish (up to timeoutMs, then they are reset),
   * flush, end the link.
   */
  close(timeoutMs = 5000): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.goAway();
    if (!this.closing) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.closing = { resolve, timer: null };
      this.once('close', () => resolve());
      if (timeoutMs > 0) {
        this.closing.timer = setTimeout(() => this.finishClose(), timeoutMs);
        this.closing.timer.unref();
      }
      this.maybeFinishClose();
      return done;
    }
    return new Promise((resolve) => this.once('close', () => resolve()));
  }

  /** Immediate end: every live stream fails with `err` (or SessionClosedError). */
  destroy(err?: Error): void {
    this.terminate(err ?? null, false);
  }

  stats(): SessionStats {
    return {
      role: this.role,
      ageMs: Date.now() - this.startedAt,
      streams: this.streamTable.size,
      ...this.counters,
      localGoAway: this.localGoAway,
      remoteGoAway: this.remoteGoAway,
      linkBlocked: this.writer.isBlocked,
      readingPaused: this.writer.holdingAnswers,
    };
  }

  streamStats(): StreamStats[] {
    return [...this.streamTable.values()].map((s) => s.stats());
  }

  // ---- StreamHost ------------------------------------------------------------------------

  get rttMs(): number {
    return this.pings.lastRttMs;
  }

  reserveWindow(bytes: number): number {
    const granted = Math.min(bytes, this.windowBudget);
    this.windowBudget -= granted;
    return granted;
  }

  releaseWindow(bytes: number): void {
    this.windowBudget += bytes;
  }

  streamFinished(stream: Stream, reset: boolean): void {
    if (this.streamTable.get(stream.id) !== stream) return;
    this.streamTable.delete(stream.id);
    this.recentlyClosed.add(stream.id);
    this.counters.bytesIn += stream.bytesIn;
    this.counters.bytesOut += stream.bytesOut;
    if (stream.awaitingSynSlot) {
      const i = this.deferredOpens.indexOf(stream);
      if (i >= 0) this.deferredOpens.splice(i, 1);
    } else if (stream.awaitingAck) {
      this.releaseOpenSlot();
    }
    const i = this.acceptQueue.indexOf(stream);
    if (i >= 0) this.acceptQueue.splice(i, 1);
    this.log('debug', reset ? 'stream reset' : 'stream closed', { stream: stream.id });
    this.maybeFinishClose();
  }

  // ---- FrameHandler (the decoder's callbacks) -------------------------------------------

  onHeader(h: FrameHeader): void {
    switch (h.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.onStreamFrameHeader(h);
        break;
      case FrameType.Ping:
        this.requireSessionId(h);
        if (h.flags & Flag.SYN) {
          // Bounded: a peer that floods pings but never reads trips the control-frame cap.
          this.writer.sendControl(FrameType.Ping, Flag.ACK, 0, h.length, true);
        } else if (h.flags & Flag.ACK) {
          this.pings.answered(h.length);
        }
        break;
      case FrameType.GoAway:
        this.requireSessionId(h);
        this.onGoAway(h.length);
        break;
    }
  }

  onPayload(_h: FrameHeader, piece: Buffer): void {
    this.current?.receiveData(piece);
  }

  onFrameEnd(h: FrameHeader): void {
    if (h.type !== FrameType.Data && h.type !== FrameType.WindowUpdate) return;
    const stream = this.current;
    this.current = null;
    if (!stream) return;
    if (h.type === FrameType.WindowUpdate) stream.receiveWindowUpdate(h.length);
    // FIN and RST take effect after the data carried in the same frame.
    if (h.flags & Flag.RST) stream.receiveReset();
    else if (h.flags & Flag.FIN) stream.receiveFin();
  }

  // ---- handover ---------------------------------------------------------------------------

  private restore(s: SessionSnapshot): void {
    this.startedAt = s.startedAt;
    this.nextId = s.nextId;
    this.unackedOpens = s.unackedOpens;
    this.localGoAway = s.localGoAway;
    this.remoteGoAway = s.remoteGoAway;
    this.counters = { ...s.counters };
    this.windowBudget = s.windowBudget;
    for (const id of s.recentlyClosed) this.recentlyClosed.add(id);
    this.pings.restore(s.pings);
    this.decoder.restore(s.decoder);
    this.writer.restoreControl(fromBase64(s.control), s.answers);
    for (const snap of s.streams) {
      const stream = Stream.restore(this, snap);
      this.streamTable.set(stream.id, stream);
      if (snap.unaccepted) this.acceptQueue.push(stream);
    }
    for (const id of s.deferredOpens) {
      const stream = this.streamTable.get(id);
      if (stream) this.deferredOpens.push(stream);
    }
    this.current = s.decoder.current === null ? null : (this.streamTable.get(s.decoder.current) ?? null);
  }

  // ---- inbound frames --------------------------------------------------------------------

  private onStreamFrameHeader(h: FrameHeader): void {
    if (h.streamId === 0) throw new ProtocolError(`${typeName(h.type)} frame for stream 0`);
    if (h.type === FrameType.Data && h.length > Math.max(this.config.maxStreamWindowSize, this.config.autoTuneWindowCap)) {
      // No window can admit this: refuse before reading a byte of it.
      throw new ProtocolError(`Data frame of ${h.length} bytes exceeds any stream window`);
    }
    let stream = this.streamTable.get(h.streamId);
    if (h.flags & Flag.SYN) {
      if (stream) throw new ProtocolError(`SYN for live stream ${h.streamId}`);
      stream = this.onInboundSyn(h) ?? undefined;
    } else if (!stream) {
      // Late frames for a stream that is gone (or never was) are dropped, as hashicorp does.
      this.log('debug', 'frame for unknown stream discarded', {
        stream: h.streamId,
        type: typeName(h.type),
        flags: flagNames(h.flags),
        known: this.recentlyClosed.has(h.streamId),
      });
      this.current = null;
      return;
    }
    if (!stream) return; // inbound stream refused: its payload is skipped
    if (h.flags & Flag.ACK && stream.receiveAck()) this.releaseOpenSlot();
    if (h.type === FrameType.Data) stream.admitData(h.length);
    this.current = stream;
  }

  private onInboundSyn(h: FrameHeader): Stream | null {
    const peerParity = this.role === 'client' ? 0 : 1;
    if (h.streamId % 2 !== peerParity) {
      throw new ProtocolError(`peer opened stream ${h.streamId} with our id parity`);
    }
    if (h.type === FrameType.Data && h.length > INITIAL_STREAM_WINDOW) {
      throw new ProtocolError(`SYN frame carries ${h.length} bytes, over the initial window`);
    }
    const refusal = this.options.rejectInbound
      ? 'inbound streams are not accepted'
      : this.localGoAway || this.closing
        ? 'session is going away'
        : this.acceptQueue.length >= this.config.acceptBacklog
          ? 'accept backlog exceeded'
          : null;
    if (refusal) {
      const limit = this.options.maxRejectedStreams ?? Infinity;
      if (this.options.rejectInbound && this.counters.rejected >= limit) {
        throw new ProtocolError(`peer opened ${this.counters.rejected + 1} streams on a session that accepts none`);
      }
      this.counters.rejected++;
      this.recentlyClosed.add(h.streamId);
      this.writer.sendControl(FrameType.WindowUpdate, Flag.RST, h.streamId, 0, true);
      this.log(this.options.rejectInbound ? 'debug' : 'warn', 'inbound stream refused', {
        stream: h.streamId,
        reason: refusal,
      });
      this.current = null;
      return null;
    }
    const stream = new Stream(h.streamId, this, false);
    this.streamTable.set(h.streamId, stream);
    this.counters.accepted++;
    if (this.options.onStream) {
      this.acknowledge(stream);
      this.options.onStream(stream);
    } else {
      const waiter = this.acceptWaiters.shift();
      if (waiter) {
        this.acknowledge(stream);
        heedErrorsUntilNextTurn(stream);
        waiter.resolve(stream);
      } else {
        this.acceptQueue.push(stream);
      }
    }
    return stream;
  }

  private onGoAway(code: number): void {
    if (this.remoteGoAway) return; // one is news; repeats change nothing
    this.remoteGoAway = true;
    const level: YamuxLogLevel = code === GoAwayCode.Normal ? 'debug' : 'warn';
    this.log(level, 'peer sent GoAway', { code });
    this.emit('goaway', code);
    this.maybeFinishClose();
  }

  private requireSessionId(h: FrameHeader): void {
    if (h.streamId !== 0) throw new ProtocolError(`${typeName(h.type)} frame for stream ${h.streamId}`);
  }

  // ---- link events -----------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    const pacer = this.options.pacer;
    const startedAt = pacer ? performance.now() : 0;
    try {
      this.decoder.write(chunk);
    } catch (err) {
      this.fail(err as Error);
    }
    if (pacer && !pacer.charge(startedAt) && !this.pacedOut && !this.ended) {
      this.pacedOut = true;
      this.conn.pause();
      pacer.later(this.resumePaced);
    }
  };

  private readonly resumePaced = (): void => {
    this.pacedOut = false;
    if (!this.ended && !this.writer.holdingAnswers) this.conn.resume();
  };

  private readonly onLinkEnd = (): void => {
    if (this.ended) return;
    this.terminate(this.closing ? null : new ConnectionLostError(), true);
  };

  private readonly onLinkError = (err: Error): void => {
    if (this.ended) return;
    this.terminate(new ConnectionLostError(`connection to peer failed: ${err.message}`), true);
  };

  /** Back-pressure on the peer: a peer that asks for answers faster than it reads them waits. */
  private holdReading(held: boolean): void {
    if (held) {
      this.conn.pause();
      this.log('debug', 'reading paused: the peer is not reading our answers', { answers: this.writer.pendingAnswers });
    } else if (!this.ended && !this.pacedOut) {
      this.conn.resume();
    }
  }

  private onWriteTimeout(): void {
    if (this.writer.holdingAnswers) {
      const waited = `${this.writer.pendingAnswers} answers to its frames waited ${this.config.connectionWriteTimeout} ms`;
      this.fail(new WriteTimeoutError(`peer does not read: ${waited} for the link`));
      return;
    }
    const err = new WriteTimeoutError(`link accepted nothing for ${this.config.connectionWriteTimeout} ms`);
    this.log('warn', err.message, { waiting: this.writer.waitingSources().length });
    for (const source of this.writer.waitingSources()) (source as Stream).destroy(err);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** A protocol or internal error: GoAway with the matching code, then tear down. */
  private fail(err: Error): void {
    if (this.ended) return;
    const code = err instanceof ProtocolError ? GoAwayCode.ProtocolError : GoAwayCode.InternalError;
    const failure = err instanceof YamuxError ? err : new YamuxError(`internal error: ${err.message}`, 'ERR_YAMUX_INTERNAL');
    if (!(err instanceof YamuxError)) failure.cause = err;
    this.log('error', failure.message, { goAwayCode: code });
    this.writer.stop();
    this.writer.writeNow(FrameType.GoAway, 0, 0, code);
    this.terminate(failure, false);
  }

  private releaseOpenSlot(): void {
    this.unackedOpens = Math.max(0, this.unackedOpens - 1);
    const next = this.deferredOpens.shift();
    if (next) {
      this.unackedOpens++;
      next.sendOpenFrame();
    }
  }

  private acknowledge(stream: Stream): void {
    stream.sendOpenFrame();
  }

  private maybeFinishClose(): void {
    if (this.closing && this.streamTable.size === 0) this.finishClose();
  }

  private finishClose(): void {
    if (this.ended) return;
    this.terminate(null, false);
  }

  private terminate(err: Error | null, linkGone: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.error = err;
    const streamErr = err ?? new SessionClosedError();
    if (this.closing?.timer) clearTimeout(this.closing.timer);
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.pings.cancelAll(streamErr);
    for (const waiter of this.acceptWaiters.splice(0)) waiter.reject(streamErr);
    // Streams nobody accepted yet have no owner to tell: they go quietly.
    const unaccepted = new Set(this.acceptQueue.splice(0));
    for (const stream of [...this.streamTable.values()]) stream.abort(unaccepted.has(stream) ? null : streamErr);
    this.deferredOpens.length = 0;
    this.conn.off('data', this.onData);
    if (linkGone || this.conn.destroyed) {
      this.writer.stop();
      this.conn.destroy();
    } else {
      // Let what is queued (GoAway, final FINs) leave, then cut the link if it will not drain.
      this.writer.flush();
      this.writer.stop();
      this.conn.end();
      setTimeout(() => this.conn.destroy(), GOAWAY_LINGER_MS).unref();
    }
    if (err) this.log('debug', 'session ended', { err: err.message });
    this.emit('close', err ?? undefined);
  }

  private startKeepAlive(): void {
    this.keepAliveTimer = setInterval(() => {
      this.ping().catch((err: Error) => {
        if (this.ended) return;
        const failure = new TimeoutError(`keepalive failed: ${err.message}`);
        if (this.config.keepAliveCloseOnTimeout) this.destroy(failure);
        else this.emit('keepalive-timeout', failure);
      });
    }, this.config.keepAliveInterval);
    this.keepAliveTimer.unref();
  }

  private log(level: YamuxLogLevel, msg: string, fields?: Record<string, unknown>): void {
    this.config.logger?.(level, msg, fields);
  }
}

/**
 * A stream handed to a pending accept() reaches its owner only after the current read is
 * processed; an error that same read causes is emitted before then and, unheard, would end
 * the process. The owner's own listener takes over from the next turn.
 */
function heedErrorsUntilNextTurn(stream: Stream): void {
  const ignore = () => {};
  stream.on('error', ignore);
  setImmediate(() => stream.off('error', ignore));
}
