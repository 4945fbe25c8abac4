import { FrameType, HEADER_SIZE, PROTOCOL_VERSION, typeName } from './constants.js';
import { ProtocolError } from './errors.js';
import { decodeHeader, type FrameHeader } from './header.js';
import type { DecoderSnapshot } from './snapshot.js';

/** What the decoder reports, in wire order. */
export interface FrameHandler {
  /** Every frame's header. For a Data frame its payload follows through onPayload. */
  onHeader(header: FrameHeader): void;
  /** A piece of the current Data frame's payload: a slice of the input chunk (no copy). */
  onPayload(header: FrameHeader, piece: Buffer): void;
  /** The frame is complete (called for every frame, after its whole payload). */
  onFrameEnd(header: FrameHeader): void;
}

const enum State {
  Header,
  Payload,
  Failed,
}

/**
 * Streaming Yamux frame parser: a state machine fed with chunks of any size. A header split
 * across chunks is gathered in a 12-byte scratch buffer; payload is handed out as slices of the
 * input, so nothing proportional to a frame's length is ever allocated here.
 */
export class FrameDecoder {
  private state = State.Header;
  private readonly scratch = Buffer.allocUnsafe(HEADER_SIZE);
  private scratchFill = 0;
  private header: FrameHeader | null = null;
  private payloadLeft = 0;

  constructor(private readonly handler: FrameHandler) {}

  get failed(): boolean {
    return this.state === State.Failed;
  }

  /** Where the parser stands between two reads (for a handover; `current` is the session's). */
  snapshot(): Omit<DecoderSnapshot, 'current'> {
    const h = this.state === State.Payload ? this.header! : null;
    return {
      partialHeader: this.scratch.subarray(0, this.scratchFill).toString('base64'),
      payload: h ? { type: h.type, flags: h.flags, streamId: h.streamId, length: h.length, left: this.payloadLeft } : null,
    };
  }

  restore(s: Omit<DecoderSnapshot, 'current'>): void {
    const partial = Buffer.from(s.partialHeader, 'base64');
    if (partial.length >= HEADER_SIZE || (partial.length > 0 && s.payload)) throw new ProtocolError('inconsistent decoder snapshot');
    partial.copy(this.scratch);
    this.scratchFill = partial.length;
    if (s.payload) {
      const { left, ...fields } = s.payload;
      this.header = { version: PROTOCOL_VERSION, ...fields, type: fields.type as FrameType };
      this.payloadLeft = left;
      this.state = State.Payload;
    }
  }

  /** Throws ProtocolError on invalid input (or whatever the handler throws); input after that is ignored. */
  write(chunk: Buffer): void {
    if (this.state === State.Failed) return;
    try {
      this.consume(chunk);
    } catch (err) {
      this.state = State.Failed;
      throw err;
    }
  }

  private consume(chunk: Buffer): void {
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.state === State.Header) {
        if (this.scratchFill === 0 && end - offset >= HEADER_SIZE) {
          this.startFrame(decodeHeader(chunk, offset));
          offset += HEADER_SIZE;
        } else {
          const n = Math.min(HEADER_SIZE - this.scratchFill, end - offset);
          chunk.copy(this.scratch, this.scratchFill, offset, offset + n);
          this.scratchFill += n;
          offset += n;
          if (this.scratchFill === HEADER_SIZE) {
            this.scratchFill = 0;
            this.startFrame(decodeHeader(this.scratch));
          }
        }
      } else {
        const header = this.header!;
        const n = Math.min(this.payloadLeft, end - offset);
        this.payloadLeft -= n;
        const piece = offset === 0 && n === end ? chunk : chunk.subarray(offset, offset + n);
        offset += n;
        this.handler.onPayload(header, piece);
        if (this.payloadLeft === 0) this.finishFrame(header);
      }
    }
  }

  private startFrame(header: FrameHeader): void {
    if (header.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(`unsupported version ${header.version}`);
    }
    if (header.type > FrameType.GoAway) {
      throw new ProtocolError(`unknown frame type ${typeName(header.type)}`);
    }
    this.handler.onHeader(header);
    if (header.type === FrameType.Data && header.length > 0) {
      this.header = header;
      this.payloadLeft = header.length;
      this.state = State.Payload;
    } else {
      this.handler.onFrameEnd(header);
    }
  }

  private finishFrame(header: FrameHeader): void {
    this.header = null;
    this.state = State.Header;
    this.handler.onFrameEnd(header);
  }
}
