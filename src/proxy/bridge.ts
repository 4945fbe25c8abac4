import type net from 'node:net';
import type { ReadPacer, Stream, StreamSink } from '../yamux/index.js';

export interface BridgeEnd {
  /** Which side closed first, for the debug log. */
  closedBy: 'client' | 'guest';
  error?: Error;
}

/**
 * Ties one client connection to one yamux stream in the stream's direct mode: a Data frame's
 * payload goes straight to the client socket's write, and the stream's receive window re-opens
 * as the socket hands it to the kernel (a client that stops reading stops the guest after one
 * window); client reads go straight into Data frames, and the client is paused while its stream
 * still holds part of its last read. Half-close is forwarded both ways (client EOF -> FIN, FIN ->
 * client shutdown(SHUT_WR)), and an error, reset or abrupt close on either side destroys the
 * other, so neither outlives the other.
 *
 * Written out instead of two pipe() calls: pipe() costs about 1.5 KB of closures and state per
 * direction, and an idle connection is what a pod holds most of.
 */
export class Bridge implements StreamSink {
  private firstError: Error | undefined;
  private closedFirst: 'client' | 'guest' | null = null;
  private open = 2;
  /** Cleared by finishRequests: nothing more is taken from the client. */
  private reading = true;
  /** The client waits for the stream to send what it holds (resumed by drain()). */
  private waitingForStream = false;

  constructor(
    private readonly client: net.Socket,
    private readonly stream: Stream,
    private readonly onEnd: (end: BridgeEnd) => void,
    private readonly pacer?: ReadPacer,
  ) {
    client.on('data', this.fromClient);
    client.on('end', this.clientEnded);
    client.on('drain', this.clientDrained);
    client.on('error', this.clientFailed);
    client.once('close', this.clientClosed);
    stream.on('error', this.streamFailed);
    stream.once('close', this.streamClosed);
    stream.attach(this);
    client.resume();
  }

  get streamId(): number {
    return this.stream.id;
  }

  /** Handed over: this object lets go of both sides without touching them. */
  detach(): void {
    this.client.off('data', this.fromClient);
    this.client.off('end', this.clientEnded);
    this.client.off('drain', this.clientDrained);
    this.client.off('error', this.clientFailed);
    this.client.off('close', this.clientClosed);
    this.stream.off('error', this.streamFailed);
    this.stream.off('close', this.streamClosed);
  }

  /** Shutdown: take nothing more from the client, send FIN, let the guest's answer through. */
  finishRequests(): void {
    this.reading = false;
    this.client.off('data', this.fromClient);
    this.client.pause();
    this.stream.sendEnd();
  }

  // ---- StreamSink (the guest's side) ------------------------------------------------------

  data(piece: Buffer): void {
    this.client.write(piece);
  }

  held(): number {
    return this.client.writableLength;
  }

  end(): void {
    this.client.end();
  }

  drain(): void {
    this.waitingForStream = false;
    if (this.reading) this.client.resume();
  }

  // ---- the client's side ------------------------------------------------------------------

  private readonly fromClient = (chunk: Buffer): void => {
    const startedAt = this.pacer ? performance.now() : 0;
    if (!this.stream.send(chunk)) {
      this.waitingForStream = true;
      this.client.pause();
    }
    if (this.pacer && !this.pacer.charge(startedAt) && !this.client.isPaused()) {
      this.client.pause();
      this.pacer.later(this.resumePaced);
    }
  };

  private readonly resumePaced = (): void => {
    if (this.reading && !this.waitingForStream) this.client.resume();
  };

  private readonly clientDrained = (): void => {
    this.stream.released();
  };

  private readonly clientEnded = (): void => {
    this.stream.sendEnd();
  };

  private readonly clientFailed = (err: Error): void => {
    this.firstError ??= err;
    this.stream.destroy(); // RST: the guest must not mistake an aborted request for a complete one
  };

  private readonly streamFailed = (err: Error): void => {
    this.firstError ??= err;
    this.client.destroy();
  };

  private readonly clientClosed = (): void => {
    // Gone without a clean end both ways (e.g. killed mid-transfer): reset the stream.
    if (!this.client.readableEnded || !this.client.writableFinished) this.stream.destroy();
    this.closed('client');
  };

  private readonly streamClosed = (): void => {
    if (!this.stream.closedCleanly) this.client.destroy();
    this.closed('guest');
  };

  private closed(side: 'client' | 'guest'): void {
    this.closedFirst ??= side;
    if (--this.open === 0) {
      this.onEnd({ closedBy: this.closedFirst, ...(this.firstError ? { error: this.firstError } : {}) });
    }
  }
}
