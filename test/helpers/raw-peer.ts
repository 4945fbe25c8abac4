import type net from 'node:net';
import { Flag, FrameDecoder, encodeHeader, type FrameHeader, FrameType } from '../../src/yamux/index.js';

export interface RawFrame {
  type: FrameType;
  flags: number;
  streamId: number;
  length: number;
  payload: Buffer;
}

/**
 * A hand-driven yamux peer on a real socket: writes arbitrary (also invalid) frames and records
 * every frame the other side sends, for tests of what hashicorp cannot be made to emit.
 */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  ended = false;
  private waiters: (() => void)[] = [];
  private pieces: Buffer[] = [];

  /** Answer pings like any live peer would (so a test can use ping as a liveness check). */
  answerPings = true;

  constructor(readonly socket: net.Socket) {
    const decoder = new FrameDecoder({
      onHeader: () => {
        this.pieces = [];
      },
      onPayload: (_h, piece) => {
        this.pieces.push(Buffer.from(piece));
      },
      onFrameEnd: (h: FrameHeader) => {
        if (this.answerPings && h.type === FrameType.Ping && h.flags & Flag.SYN) {
          this.send(FrameType.Ping, Flag.ACK, 0, h.length);
        }
        this.frames.push({ ...h, payload: Buffer.concat(this.pieces) });
        this.notify();
      },
    });
    socket.on('data', (chunk: Buffer) => decoder.write(chunk));
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  send(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void {
    this.socket.write(encodeHeader(type, flags, streamId, length));
    if (payload) this.socket.write(payload);
  }

  /** Resolves with the first recorded frame matching `match` (waits for it to arrive). */
  async waitFor(match: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (this.ended) throw new Error('connection ended before the expected frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for frame');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitForEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('connection did not end');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
