import { FrameType, HEADER_SIZE, PROTOCOL_VERSION } from './constants.js';

export interface FrameHeader {
  version: number;
  type: FrameType;
  flags: number;
  streamId: number;
  /** Payload length for Data; the window delta, ping value or GoAway code otherwise. */
  length: number;
}

/** Writes a header into `buf` at `offset` (all fields big-endian). */
export function writeHeader(
  buf: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void {
  buf[offset] = PROTOCOL_VERSION;
  buf[offset + 1] = type;
  buf.writeUInt16BE(flags, offset + 2);
  buf.writeUInt32BE(streamId >>> 0, offset + 4);
  buf.writeUInt32BE(length >>> 0, offset + 8);
}

export function encodeHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(buf, 0, type, flags, streamId, length);
  return buf;
}

export function decodeHeader(buf: Buffer, offset = 0): FrameHeader {
  return {
    version: buf[offset]!,
    type: buf[offset + 1]! as FrameType,
    flags: buf.readUInt16BE(offset + 2),
    streamId: buf.readUInt32BE(offset + 4),
    length: buf.readUInt32BE(offset + 8),
  };
}
