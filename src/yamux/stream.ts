import { Duplex } from 'node:stream';
import { Flag, FrameType, INITIAL_STREAM_WINDOW, MAX_WINDOW } from './constants.js';
import type { YamuxConfig } from './config.js';
import { ProtocolError, StreamResetError, TimeoutError } from './errors.js';
import type { FrameSource, FrameWriter } from './frame-writer.js';
import { fromBase64, readableBytes, toBase64, type StreamSnapshot } from './snapshot.js';
import type { StreamState } from './stream-state.js';

/** What a stream needs from its session. */
export interface StreamHost {
  readonly config: YamuxConfig;
  readonly role: 'client' | 'server';
  readonly writer: FrameWriter;
  /** The stream is finished at the protocol level: drop it from the table. */
  streamFinished(stream: Stream, reset: boolean): void;
  /** Non-null once the session can no longer carry frames. */
  readonly terminalError: Error | null;
  /** The last measured round trip to the peer, ms (0 when unknown). */
  readonly rttMs: number;
  /** Window auto-tuning: takes up to `bytes` from the session's budget; returns what it granted. */
  reserveWindow(bytes: number): number;
  releaseWindow(bytes: number): void;
}

export interface StreamStats {
  id: number;
  state: StreamState;
  ageMs: number;
  bytesIn: number;
  bytesOut: number;
  sendWindow: number;
  recvWindow: number;
  /** The receive window's size (above maxStreamWindowSize once auto-tuning grew it). */
  windowSize: number;
  bufferedIn: number;
  bufferedOut: number;
  localFin: boolean;
  remoteFin: boolean;
}

/**
 * The consumer of a stream in direct mode (see Stream.attach): payload goes straight to it and
 * data goes straight to the link, without the Duplex's Readable/Writable machinery.
 */
export interface StreamSink {
  /** A payload piece, in order. The piece's bytes count against the window until `held()` drops. */
  data(piece: Buffer): void;
  /** Bytes handed to `data` that the consumer still holds (e.g. a socket's writableLength). */
  held(): number;
  /** The peer sent FIN (after all its data). */
  end(): void;
  /** Queued data went out: `send` may be called again after it returned false. */
  drain(): void;
}

/** Window auto-tuning's floor for the round-trip time (a local VM's is far below). */
const MIN_RTT_MS = 1;

interface PendingChunk {
  buf: Buffer;
  cb: ((err?: Error | null) => void) | null;
}

/**
 * One yamux stream as a Node Duplex. Writes become Data frames no larger than the send window
 * and maxFrameSize; the receive window is re-opened only as the reader consumes, so a stalled
 * reader stops the peer after one window. end() sends FIN (half-close).
 */
export class Stream extends Duplex implements FrameSource {
  queued = false;
  openedAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;

  private state: StreamState;
  private synPending: boolean;
  private ackAwaited = false;
  private sendWindow = INITIAL_STREAM_WINDOW;
  private recvWindow = INITIAL_STREAM_WINDOW;
  /** Our receive window's size: maxStreamWindowSize, or more once auto-tuning grew it. */
  private windowSize = INITIAL_STREAM_WINDOW;
  private windowGrown = 0;
  private windowEpoch = 0;
  private readonly recvQueue: Buffer[] = [];
  private recvQueued = 0;
  private readWanted = false;
  private localFin = false;
  private remoteFin = false;
  private endPushed = false;
  private finished = false;
  private readonly sendQueue: PendingChunk[] = [];
  private sendHead = 0;
  private sendPending = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerDue: { deadline: number; message: string } | null = null;
  private sink: StreamSink | null = null;
  private sinkWaiting = false;
  private finQueued = false;

  constructor(
    readonly id: number,
    private readonly host: StreamHost,
    outbound: boolean,
  ) {
    super({ allowHalfOpen: true, emitClose: true, autoDestroy: true });
    this.state = outbound ? 'syn-sent' : 'syn-received';
    this.synPending = outbound;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  get isEstablished(): boolean {
    return this.state === 'established';
  }

  /**
   * Direct mode: from now on payload goes to `sink` instead of the Readable side, and the caller
   * sends with `send`/`sendEnd` instead of write/end. The receive window is re-opened as the sink
   * lets go of what it was handed, so a sink that holds everything stops the peer after one window.
   * The stream destroys itself (emitting 'close') once both sides finished; errors still come as
   * 'error' (listen for it).
   */
  attach(sink: StreamSink): void {
    this.sink = sink;
    while (this.recvQueue.length > 0) {
      const piece = this.recvQueue.shift()!;
      this.recvQueued -= piece.length;
      sink.data(piece);
    }
    if (this.remoteFin && !this.endPushed) {
      this.endPushed = true;
      sink.end();
    }
    this.released();
  }

  /**
   * Direct mode: queues `buf` as Data frames; false (anything left unsent) asks the caller to
   * wait for sink.drain(), which comes once all of it went to the link. So a stream holds one
   * client read at most: allowing 128 KiB ahead doubled the daemon's peak memory on 64 uploads
   * (each read is a fresh buffer, freed only by a GC) and gained no throughput.
   */
  send(buf: Buffer): boolean {
    this.enqueue(buf, null);
    if (this.sendPending === 0) return true;
    this.sinkWaiting = true;
    return false;
  }

  /** Direct mode: FIN once everything queued is sent (half-close). */
  sendEnd(): void {
    if (this.host.terminalError) return;
    if (this.sendPending > 0) this.finQueued = true;
    else this.sendFin();
  }

  /** Direct mode: the sink let go of data (e.g. its socket drained): re-open the window. */
  released(): void {
    this.maybeUpdateWindow();
  }

  /** Direct mode: both sides sent FIN (a clean end, not a reset). */
  get closedCleanly(): boolean {
    return this.state === 'closed';
  }

  /** Sends RST and destroys the stream: the peer sees a reset, not a clean end. */
  reset(): void {
    this.destroy();
  }

  stats(): StreamStats {
    return {
      id: this.id,
      state: this.state,
      ageMs: Date.now() - this.openedAt,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      sendWindow: this.sendWindow,
      recvWindow: this.recvWindow,
      windowSize: this.windowSize,
      bufferedIn: this.recvQueued + (this.sink ? this.sink.held() : this.readableLength),
      bufferedOut: this.sendPending + this.writableLength,
      localFin: this.localFin,
      remoteFin: this.remoteFin,
    };
  }

  // ---- handover ---------------------------------------------------------------------------

  /** Everything another process needs to carry this stream on (see Session.snapshot). */
  snapshot(unaccepted: boolean): StreamSnapshot {
    const unsent: Buffer[] = [];
    if (this.sendQueue.length > 0) {
      unsent.push(this.sendQueue[0]!.buf.subarray(this.sendHead));
      for (let i = 1; i < this.sendQueue.length; i++) unsent.push(this.sendQueue[i]!.buf);
    }
    // A Duplex-mode writer's writes still buffered by the Writable side.
    for (const w of (this as unknown as { writableBuffer: { chunk: Buffer }[] }).writableBuffer ?? []) unsent.push(w.chunk);
    const received = [...this.recvQueue];
    if (!this.sink && this.readableLength > 0) received.unshift(readableBytes(this));
    return {
      id: this.id,
      outbound: this.id % 2 === 1 ? this.host.role === 'client' : this.host.role === 'server',
      state: this.state,
      startedAt: this.openedAt,
      synPending: this.synPending,
      ackAwaited: this.ackAwaited,
      sendWindow: this.sendWindow,
      recvWindow: this.recvWindow,
      windowSize: this.windowSize,
      windowGrown: this.windowGrown,
      windowEpochAgeMs: performance.now() - this.windowEpoch,
      localFin: this.localFin,
      remoteFin: this.remoteFin,
      finQueued: this.finQueued || ((this as unknown as { writableEnded: boolean }).writableEnded && !this.localFin),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      received: toBase64(received),
      unsent: toBase64(unsent),
      timer: this.timerDue,
      unaccepted,
    };
  }

  /** A stream as another Session object left it; its reader and writer attach afresh. */
  static restore(host: StreamHost, s: StreamSnapshot): Stream {
    const stream = new Stream(s.id, host, s.outbound);
    stream.state = s.state;
    stream.openedAt = s.startedAt;
    stream.synPending = s.synPending;
    stream.ackAwaited = s.ackAwaited;
    stream.sendWindow = s.sendWindow;
    stream.recvWindow = s.recvWindow;
    stream.windowSize = s.windowSize;
    stream.windowGrown = s.windowGrown;
    stream.windowEpoch = performance.now() - s.windowEpochAgeMs;
    stream.localFin = s.localFin;
    stream.remoteFin = s.remoteFin;
    stream.finQueued = s.finQueued;
    stream.bytesIn = s.bytesIn;
    stream.bytesOut = s.bytesOut;
    const received = fromBase64(s.received);
    if (received.length > 0) {
      stream.recvQueue.push(received);
      stream.recvQueued = received.length;
    }
    const unsent = fromBase64(s.unsent);
    if (unsent.length > 0) {
      stream.sendQueue.push({ buf: unsent, cb: null });
      stream.sendPending = unsent.length;
    }
    if (s.timer) stream.armTimer(s.timer.deadline, s.timer.message);
    if (stream.sendPending > 0 && !stream.synPending && stream.sendWindow > 0) host.writer.markReady(stream);
    return stream;
  }

  /** A handover is in progress: the timer stops (its deadline is kept). */
  pauseTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  resumeTimer(): void {
    if (this.timerDue && !this.timer) this.armTimer(this.timerDue.deadline, this.timerDue.message);
  }

  /** Handed over: this object goes quiet (no timer, no frames; the session has let go of the link). */
  abandon(): void {
    this.clearTimer();
    this.finished = true;
    this.sink = null;
  }

  // ---- called by the session -------------------------------------------------------------

  /** Our SYN (outbound) or ACK (inbound), announcing a window above the default if configured. */
  sendOpenFrame(): void {
    const flags = this.state === 'syn-sent' ? Flag.SYN : Flag.ACK;
    const max = this.host.config.maxStreamWindowSize;
    this.recvWindow = max;
    this.windowSize = max;
    this.windowEpoch = performance.now();
    this.host.writer.sendControl(FrameType.WindowUpdate, flags, this.id, max - INITIAL_STREAM_WINDOW);
    if (flags === Flag.ACK) {
      this.state = 'established';
    } else {
      this.synPending = false;
      this.ackAwaited = true;
      this.startTimer(this.host.config.streamOpenTimeout, 'stream open timed out waiting for ACK');
      if (this.sendPending > 0) this.host.writer.markReady(this);
    }
  }

  get awaitingSynSlot(): boolean {
    return this.synPending;
  }

  /** Our SYN is on the wire and no ACK came back yet: the stream holds one of the session's open slots. */
  get awaitingAck(): boolean {
    return this.ackAwaited;
  }

  /** Flags of a Data or WindowUpdate frame; FIN and RST are applied after the frame's data. */
  receiveAck(): boolean {
    if (this.state !== 'syn-sent') return false;
    this.state = 'established';
    this.ackAwaited = false;
    this.clearTimer();
    return true;
  }

  /** Validates a Data frame's length before its payload is read. */
  admitData(length: number): void {
    if (this.remoteFin) throw new ProtocolError(`data after FIN on stream ${this.id}`);
    if (length > this.recvWindow) {
      throw new ProtocolError(
        `stream ${this.id} received ${length} bytes with a receive window of ${this.recvWindow}`,
      );
    }
    this.recvWindow -= length;
  }

  receiveData(piece: Buffer): void {
    this.bytesIn += piece.length;
    if (this.destroyed) return;
    if (this.sink) {
      this.sink.data(piece);
      this.maybeUpdateWindow();
    } else if (this.readWanted && this.recvQueued === 0) {
      this.readWanted = this.push(piece);
    } else {
      this.recvQueue.push(piece);
      this.recvQueued += piece.length;
    }
  }

  receiveWindowUpdate(delta: number): void {
    if (delta === 0) return;
    const next = this.sendWindow + delta;
    if (next > MAX_WINDOW) {
      throw new ProtocolError(`window update overflows the send window of stream ${this.id}`);
    }
    this.sendWindow = next;
    if (this.sendPending > 0 && !this.synPending) this.host.writer.markReady(this);
  }

  receiveFin(): void {
    if (this.remoteFin) return; // a duplicate FIN is harmless to us
    this.remoteFin = true;
    this.deliverEnd();
    this.checkFinished();
  }

  receiveReset(): void {
    // An inbound stream still waiting to be accepted has no owner to tell: it goes quietly
    // (an 'error' nobody listens for would be thrown out of the engine).
    const unaccepted = this.state === 'syn-received';
    this.markFinished(true);
    this.destroy(unaccepted ? undefined : new StreamResetError(`stream ${this.id} reset by peer`));
  }

  /** The session is gone: fail the stream (no frames can be sent any more). */
  abort(err: Error | null): void {
    this.markFinished(true);
    this.destroy(err ?? undefined);
  }

  // ---- FrameSource -----------------------------------------------------------------------

  writeFrame(writer: FrameWriter): boolean {
    const n = Math.min(this.sendWindow, this.host.config.maxFrameSize, this.sendPending);
    if (n <= 0 || this.finished) return false;
    const pieces: Buffer[] = [];
    const done: PendingChunk[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.sendQueue[0]!;
      const available = chunk.buf.length - this.sendHead;
      const take = Math.min(available, left);
      pieces.push(
        this.sendHead === 0 && take === chunk.buf.length
          ? chunk.buf
          : chunk.buf.subarray(this.sendHead, this.sendHead + take),
      );
      left -= take;
      this.sendHead += take;
      if (this.sendHead === chunk.buf.length) {
        this.sendQueue.shift();
        this.sendHead = 0;
        done.push(chunk);
      }
    }
    this.sendWindow -= n;
    this.sendPending -= n;
    this.bytesOut += n;
    writer.writeData(this.id, 0, n, pieces);
    for (const chunk of done) chunk.cb?.();
    if (this.sendPending === 0 && this.finQueued) {
      this.finQueued = false;
      this.sendFin();
    }
    if (this.sinkWaiting && this.sendPending === 0) {
      this.sinkWaiting = false;
      this.sink?.drain();
    }
    return this.sendPending > 0 && this.sendWindow > 0;
  }

  // ---- Duplex ----------------------------------------------------------------------------

  override _read(): void {
    this.readWanted = true;
    while (this.recvQueue.length > 0) {
      const piece = this.recvQueue.shift()!;
      this.recvQueued -= piece.length;
      if (!this.push(piece)) {
        this.readWanted = false;
        break;
      }
    }
    if (this.recvQueue.length === 0) this.deliverEnd();
    this.maybeUpdateWindow();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.enqueue(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (let i = 0; i < chunks.length; i++) {
      this.enqueue(chunks[i]!.chunk, i === chunks.length - 1 ? cb : null);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    const err = this.host.terminalError;
    if (err) return cb(err);
    this.sendFin();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.clearTimer();
    if (!this.finished && !this.host.terminalError) {
      // Abandoned before both sides finished: tell the peer with RST.
      this.host.writer.sendControl(FrameType.WindowUpdate, Flag.RST, this.id, 0);
      this.state = 'reset';
    }
    this.markFinished(this.state === 'reset');
    const pending = this.sendQueue.splice(0);
    this.sendPending = 0;
    this.recvQueue.length = 0;
    this.recvQueued = 0;
    for (const chunk of pending) chunk.cb?.(err ?? new StreamResetError(`stream ${this.id} destroyed`));
    cb(err);
  }

  // ---- internals -------------------------------------------------------------------------

  private enqueue(buf: Buffer, cb: ((err?: Error | null) => void) | null): void {
    const err = this.host.terminalError;
    if (err) {
      cb?.(err);
      return;
    }
    if (buf.length === 0) {
      cb?.();
      return;
    }
    this.sendQueue.push({ buf, cb });
    this.sendPending += buf.length;
    if (!this.synPending && this.sendWindow > 0) this.host.writer.markReady(this);
  }

  private sendFin(): void {
    if (this.localFin || this.finished) return; // never a second FIN: hashicorp kills the session
    this.localFin = true;
    this.host.writer.sendControl(FrameType.WindowUpdate, Flag.FIN, this.id, 0);
    if (!this.remoteFin) this.startTimer(this.host.config.streamCloseTimeout, 'peer did not close the stream in time');
    this.checkFinished();
  }

  private deliverEnd(): void {
    if (this.remoteFin && !this.endPushed && this.recvQueue.length === 0) {
      this.endPushed = true;
      if (this.sink) this.sink.end();
      else this.push(null);
    }
  }

  /** hashicorp's rule: announce credit once at least half the window has been consumed. */
  private maybeUpdateWindow(): void {
    if (this.remoteFin || this.finished) return;
    const held = this.recvQueued + (this.sink ? this.sink.held() : this.readableLength);
    let delta = this.windowSize - held - this.recvWindow;
    if (delta < this.windowSize / 2) return;
    if (this.host.config.autoTuneWindowCap > this.windowSize) delta += this.growWindow();
    this.recvWindow += delta;
    this.host.writer.sendControl(FrameType.WindowUpdate, 0, this.id, delta);
  }

  /**
   * libp2p go-yamux's auto-tuning: half the window consumed within four round trips means the
   * peer is held back by our window, so it doubles (up to the cap, within the session's budget).
   * The round trip counts as at least 1 ms, and as that before any ping measured it.
   */
  private growWindow(): number {
    const now = performance.now();
    const epoch = now - this.windowEpoch;
    this.windowEpoch = now;
    if (epoch >= 4 * Math.max(this.host.rttMs, MIN_RTT_MS)) return 0;
    const extra = this.host.reserveWindow(Math.min(this.windowSize, this.host.config.autoTuneWindowCap - this.windowSize));
    this.windowSize += extra;
    this.windowGrown += extra;
    return extra;
  }

  private checkFinished(): void {
    if (this.localFin && this.remoteFin) {
      this.state = 'closed';
      this.markFinished(false);
    }
  }

  private markFinished(reset: boolean): void {
    if (this.finished) return;
    this.finished = true;
    if (reset) this.state = 'reset';
    this.clearTimer();
    if (this.windowGrown > 0) this.host.releaseWindow(this.windowGrown);
    this.windowGrown = 0;
    this.host.streamFinished(this, reset);
    // Direct mode bypasses the Duplex's own ends, so its autoDestroy never fires.
    if (this.sink && !reset && !this.destroyed) this.destroy();
  }

  private startTimer(ms: number, message: string): void {
    this.clearTimer();
    if (ms <= 0) return;
    this.armTimer(Date.now() + ms, message);
  }

  private armTimer(deadline: number, message: string): void {
    this.timerDue = { deadline, message };
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerDue = null;
      this.destroy(new TimeoutError(`stream ${this.id}: ${message}`));
    }, Math.max(0, deadline - Date.now()));
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerDue = null;
  }
}
