import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Flag,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  ProtocolError,
  decodeHeader,
  encodeHeader,
  type FrameHeader,
} from '../../src/yamux/index.js';

interface Decoded {
  header: FrameHeader;
  payload: Buffer;
}

function decodeAll(chunks: Buffer[]): Decoded[] {
  const out: Decoded[] = [];
  let pieces: Buffer[] = [];
  const decoder = new FrameDecoder({
    onHeader: () => {
      pieces = [];
    },
    onPayload: (_h, piece) => pieces.push(Buffer.from(piece)),
    onFrameEnd: (header) => out.push({ header, payload: Buffer.concat(pieces) }),
  });
  for (const chunk of chunks) decoder.write(chunk);
  return out;
}

function cut(bytes: Buffer, points: number[]): Buffer[] {
  const sorted = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of sorted) {
    chunks.push(bytes.subarray(last, p));
    last = p;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

const frameArb = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Data),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.integer({ min: 1, max: 0xffff_ffff }),
    payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constantFrom(FrameType.WindowUpdate, FrameType.Ping, FrameType.GoAway),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.integer({ min: 0, max: 0xffff_ffff }),
    value: fc.integer({ min: 0, max: 0xffff_ffff }),
  }),
);

type ArbFrame = { type: FrameType; flags: number; streamId: number; payload?: Buffer; value?: number };

function encodeFrame(f: ArbFrame): Buffer {
  if (f.payload) {
    return Buffer.concat([encodeHeader(f.type, f.flags, f.streamId, f.payload.length), f.payload]);
  }
  return encodeHeader(f.type, f.flags, f.streamId, f.value!);
}

describe('header codec', () => {
  it('round-trips every field big-endian', () => {
    const buf = encodeHeader(FrameType.WindowUpdate, Flag.ACK | Flag.FIN, 0xdeadbeef, 0x01020304);
    expect(buf.length).toBe(HEADER_SIZE);
    expect([...buf]).toEqual([0, 1, 0, 6, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
    expect(decodeHeader(buf)).toEqual({
      version: 0,
      type: FrameType.WindowUpdate,
      flags: Flag.ACK | Flag.FIN,
      streamId: 0xdeadbeef,
      length: 0x01020304,
    });
  });
});

describe('FrameDecoder', () => {
  it('hands out payload without copying when a frame lies within one chunk', () => {
    const payload = Buffer.from('hello yamux');
    const wire = Buffer.concat([encodeHeader(FrameType.Data, 0, 1, payload.length), payload]);
    const seen: Buffer[] = [];
    const decoder = new FrameDecoder({
      onHeader: () => {},
      onPayload: (_h, piece) => seen.push(piece),
      onFrameEnd: () => {},
    });
    decoder.write(wire);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buffer).toBe(wire.buffer);
    expect(seen[0]!.byteOffset).toBe(wire.byteOffset + HEADER_SIZE);
  });

  it('decodes byte-by-byte input', () => {
    const frames = [
      Buffer.concat([encodeHeader(FrameType.Data, Flag.SYN, 1, 3), Buffer.from('abc')]),
      encodeHeader(FrameType.Ping, Flag.SYN, 0, 7),
    ];
    const wire = Buffer.concat(frames);
    const chunks = [...wire].map((b) => Buffer.from([b]));
    const out = decodeAll(chunks);
    expect(out.map((d) => [d.header.type, d.header.flags, d.payload.toString()])).toEqual([
      [FrameType.Data, Flag.SYN, 'abc'],
      [FrameType.Ping, Flag.SYN, ''],
    ]);
  });

  it('property: any valid frames cut at arbitrary points decode to the same frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, points) => {
        const wire = Buffer.concat(frames.map(encodeFrame));
        const whole = decodeAll([wire]);
        const pieces = decodeAll(cut(wire, points));
        expect(pieces).toEqual(whole);
        expect(whole).toHaveLength(frames.length);
        whole.forEach((d, i) => {
          const f = frames[i] as ArbFrame;
          expect(d.header.type).toBe(f.type);
          expect(d.header.flags).toBe(f.flags);
          expect(d.header.streamId).toBe(f.streamId);
          if (f.payload) expect(d.payload.equals(f.payload)).toBe(true);
          else expect(d.header.length).toBe(f.value);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('property: arbitrary bytes never throw anything but ProtocolError, and garbage ends in one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, points) => {
        const buf = Buffer.from(bytes);
        try {
          decodeAll(cut(buf, points));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 500 },
    );
    // A bad version or type byte is always reported.
    expect(() => decodeAll([Buffer.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])])).toThrow(/version/);
    expect(() => decodeAll([Buffer.from([0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])])).toThrow(/unknown frame type/);
  });

  it('allocates nothing proportional to a bogus length field', () => {
    const decoder = new FrameDecoder({ onHeader: () => {}, onPayload: () => {}, onFrameEnd: () => {} });
    const before = process.memoryUsage().arrayBuffers;
    decoder.write(encodeHeader(FrameType.Data, 0, 1, 0xffff_ffff));
    decoder.write(Buffer.alloc(16));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024);
  });

  it('ignores input after a protocol error', () => {
    const frames: FrameHeader[] = [];
    const decoder = new FrameDecoder({ onHeader: (h) => frames.push(h), onPayload: () => {}, onFrameEnd: () => {} });
    expect(() => decoder.write(Buffer.from([7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(ProtocolError);
    decoder.write(encodeHeader(FrameType.Ping, Flag.SYN, 0, 1));
    expect(frames).toHaveLength(0);
    expect(decoder.failed).toBe(true);
  });
});
