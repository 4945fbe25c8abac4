// Scenarios of a hostile yamux peer for the fuzzer: frame sequences (sensible, hostile, floods,
// garbage), mutated (bytes flipped, frames duplicated, dropped, swapped), cut at random points,
// interleaved with what our side does on its own streams. Frames are encoded by frames.ts,
// independently of src/yamux.
import fc from 'fast-check';
import { F, T, encodeFrame, INITIAL_WINDOW } from './frames.js';

export type Role = 'client' | 'server';

/** Our side's moves; `s` picks one of our live streams (modulo their number). */
export type LocalAction =
  | { do: 'open' }
  | { do: 'write'; s: number; size: number }
  | { do: 'end'; s: number }
  | { do: 'reset'; s: number }
  | { do: 'pause'; s: number }
  | { do: 'resume'; s: number }
  | { do: 'accept' }
  | { do: 'ping' }
  | { do: 'goAway' }
  | { do: 'close' }
  | { do: 'sleep'; ms: number };

/** A chunk the peer writes (the runner lets the event loop turn after each), or a local action. */
export type Step = { bytes: Buffer; frames: number } | { act: LocalAction };

/** How the scenario ends once its steps are done. */
export type Finale = 'hangup' | 'half-close' | 'goaway-close' | 'close' | 'destroy';

export interface SessionSetup {
  acceptBacklog: number;
  maxStreamWindowSize: number;
  maxFrameSize: number;
  streamOpenTimeout: number;
  streamCloseTimeout: number;
  connectionWriteTimeout: number;
  enableKeepAlive: boolean;
  keepAliveInterval: number;
  keepAliveCloseOnTimeout: boolean;
}

export interface Scenario {
  role: Role;
  /** Client sessions refuse inbound streams as kata-proxy's do; servers accept them. */
  rejectInbound: boolean;
  /** Server only: inbound streams handed over at once, or left to accept() actions. */
  acceptMode: 'onStream' | 'accept';
  config: SessionSetup;
  /** False: the peer never reads what we send until the finale (our writes back up). */
  peerReads: boolean;
  steps: Step[];
  finale: Finale;
  /** Frames the peer sends (after mutation). */
  frames: number;
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const OUR_PING_VALUES = fc.nat(8); // the engine numbers its pings from 0

function ids(role: Role): { ours: (k: number) => number; theirs: (k: number) => number } {
  return role === 'client'
    ? { ours: (k) => 2 * k + 1, theirs: (k) => 2 * k + 2 }
    : { ours: (k) => 2 * k + 2, theirs: (k) => 2 * k + 1 };
}

const payloadLength = fc.oneof(
  { weight: 6, arbitrary: fc.nat(64) },
  { weight: 2, arbitrary: fc.nat(4096) },
  { weight: 1, arbitrary: fc.nat(64 * 1024) },
);

function data(id: number, flags: number, length: number, fill: number): Buffer {
  return encodeFrame(T.Data, flags, id, length, Buffer.alloc(length, fill));
}

/** Frames a buggy but not malicious peer sends: right ids and flags, small windows. */
function sensibleFrames(role: Role): fc.Arbitrary<Buffer[]> {
  const { ours, theirs } = ids(role);
  const our = fc.nat(5).map(ours);
  const their = fc.nat(11).map(theirs);
  const windowDelta = fc.oneof(fc.constant(0), fc.nat(INITIAL_WINDOW));
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(our, fc.constantFrom(0, 0, 0, 0, F.ACK, F.ACK, F.FIN, F.ACK | F.FIN), payloadLength, fc.nat(255)).map(([id, fl, n, b]) => [data(id, fl, n, b)]) },
    { weight: 4, arbitrary: fc.tuple(their, fc.constantFrom(0, 0, 0, F.SYN, F.SYN, F.FIN), payloadLength, fc.nat(255)).map(([id, fl, n, b]) => [data(id, fl, n, b)]) },
    { weight: 3, arbitrary: fc.tuple(our, fc.constantFrom(0, 0, F.ACK, F.FIN, F.RST, F.ACK | F.FIN), windowDelta).map(([id, fl, d]) => [encodeFrame(T.WindowUpdate, fl, id, d)]) },
    { weight: 2, arbitrary: fc.tuple(their, fc.constantFrom(0, F.SYN, F.FIN, F.RST), windowDelta).map(([id, fl, d]) => [encodeFrame(T.WindowUpdate, fl, id, d)]) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(F.SYN, F.ACK), fc.oneof(OUR_PING_VALUES, u32)).map(([fl, v]) => [encodeFrame(T.Ping, fl, 0, v)]) },
    { weight: 1, arbitrary: fc.constantFrom(0, 1, 2).map((code) => [encodeFrame(T.GoAway, 0, 0, code)]) },
  );
}

/** Anything a hostile guest can put on the wire. */
function hostileFrames(role: Role): fc.Arbitrary<Buffer[]> {
  const { ours, theirs } = ids(role);
  const anyId = fc.oneof(
    { weight: 5, arbitrary: fc.nat(7).map(ours) },
    { weight: 5, arbitrary: fc.nat(7).map(theirs) },
    { weight: 1, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: u32 },
  );
  const anyFlags = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0, F.SYN, F.ACK, F.FIN, F.RST) },
    { weight: 2, arbitrary: fc.nat(15) },
    { weight: 1, arbitrary: fc.nat(0xffff) },
  );
  const sessionId = fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: anyId });
  const hugeLength = fc.oneof(u32, fc.integer({ min: INITIAL_WINDOW - 16, max: INITIAL_WINDOW + 16 }), fc.constant(0xffff_ffff));
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(anyId, anyFlags, payloadLength, fc.nat(255)).map(([id, fl, n, b]) => [data(id, fl, n, b)]) },
    { weight: 5, arbitrary: fc.tuple(anyId, anyFlags, fc.oneof(fc.nat(64 * 1024), u32)).map(([id, fl, d]) => [encodeFrame(T.WindowUpdate, fl, id, d)]) },
    { weight: 2, arbitrary: fc.tuple(sessionId, anyFlags, fc.oneof(OUR_PING_VALUES, u32)).map(([id, fl, v]) => [encodeFrame(T.Ping, fl, id, v)]) },
    { weight: 1, arbitrary: fc.tuple(sessionId, anyFlags, fc.oneof(fc.nat(3), u32)).map(([id, fl, c]) => [encodeFrame(T.GoAway, fl, id, c)]) },
    // A length that lies about the payload: refused, or the rest of the stream is read as payload.
    { weight: 1, arbitrary: fc.tuple(anyId, anyFlags, hugeLength, fc.nat(256)).map(([id, fl, len, n]) => [Buffer.concat([encodeFrame(T.Data, fl, id, len), Buffer.alloc(n, 0x5a)])]) },
    // Bad version, unknown type, or noise.
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 255 }), fc.nat(3), anyId).map(([v, t, id]) => [versioned(encodeFrame(t, 0, id, 0), v)]) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 4, max: 255 }), anyFlags, anyId, u32).map(([t, fl, id, n]) => [encodeFrame(t, fl, id, n)]) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => [Buffer.from(a)]) },
    // Floods: SYNs (refused or over the backlog), pings, data bursts on one stream.
    { weight: 1, arbitrary: fc.tuple(fc.nat(1000), fc.integer({ min: 10, max: 300 }), fc.boolean()).map(([k, n, asData]) =>
      Array.from({ length: n }, (_, i) => (asData ? data(theirs(8 + k + i), F.SYN, 3, 0x21) : encodeFrame(T.WindowUpdate, F.SYN, theirs(8 + k + i), 0)))) },
    { weight: 1, arbitrary: fc.integer({ min: 10, max: 500 }).map((n) => Array.from({ length: n }, (_, i) => encodeFrame(T.Ping, F.SYN, 0, i))) },
    { weight: 1, arbitrary: fc.tuple(fc.oneof(fc.nat(3).map(ours), fc.nat(3).map(theirs)), fc.integer({ min: 2, max: 40 }), fc.nat(16 * 1024)).map(([id, n, len]) =>
      Array.from({ length: n }, () => data(id, 0, len, 0x42))) },
  );
}

function versioned(frame: Buffer, version: number): Buffer {
  frame[0] = version;
  return frame;
}

const localAction: fc.Arbitrary<LocalAction> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ do: 'open' as const }) },
  { weight: 8, arbitrary: fc.tuple(fc.nat(15), fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 2048 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 600 * 1024 }) })).map(([s, size]) => ({ do: 'write' as const, s, size })) },
  { weight: 2, arbitrary: fc.nat(15).map((s) => ({ do: 'end' as const, s })) },
  { weight: 1, arbitrary: fc.nat(15).map((s) => ({ do: 'reset' as const, s })) },
  { weight: 1, arbitrary: fc.nat(15).map((s) => ({ do: 'pause' as const, s })) },
  { weight: 1, arbitrary: fc.nat(15).map((s) => ({ do: 'resume' as const, s })) },
  { weight: 2, arbitrary: fc.constant({ do: 'accept' as const }) },
  { weight: 1, arbitrary: fc.constant({ do: 'ping' as const }) },
  { weight: 1, arbitrary: fc.constantFrom({ do: 'goAway' as const }, { do: 'close' as const }, { do: 'sleep' as const, ms: 16 }) },
);

type Entry = Buffer | LocalAction;

/** Mutations of a valid-looking sequence: flip a byte, duplicate, drop or swap entries. */
interface Mutation {
  op: 'flip' | 'dup' | 'drop' | 'swap';
  at: number;
  to: number;
  mask: number;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'dup', 'drop', 'swap'),
  at: fc.nat(),
  to: fc.nat(),
  mask: fc.integer({ min: 1, max: 255 }),
});

function mutate(entries: Entry[], m: Mutation): void {
  if (entries.length === 0) return;
  const i = m.at % entries.length;
  const e = entries[i]!;
  switch (m.op) {
    case 'flip':
      if (Buffer.isBuffer(e) && e.length > 0) {
        const copy = Buffer.from(e);
        copy[m.to % copy.length]! ^= m.mask;
        entries[i] = copy;
      }
      break;
    case 'dup':
      entries.splice(m.to % (entries.length + 1), 0, e);
      break;
    case 'drop':
      entries.splice(i, 1);
      break;
    case 'swap': {
      const j = (i + 1) % entries.length;
      entries[i] = entries[j]!;
      entries[j] = e;
      break;
    }
  }
}

/** Peer bytes between local actions, cut at the given offsets (modulo each run's length). */
function cutIntoSteps(entries: Entry[], cuts: number[]): { steps: Step[]; frames: number } {
  const steps: Step[] = [];
  let run: Buffer[] = [];
  let cutIndex = 0;
  let frames = 0;
  const flush = (): void => {
    if (run.length === 0) return;
    const bytes = Buffer.concat(run);
    // Frame starts per chunk, for counting what reached a live session.
    const starts: number[] = [];
    let at = 0;
    for (const f of run) {
      starts.push(at);
      at += f.length;
    }
    const points = new Set<number>([0, bytes.length]);
    const take = Math.min(cuts.length - cutIndex, 1 + run.length * 2);
    for (let k = 0; k < take; k++) points.add(cuts[cutIndex++]! % bytes.length);
    const sorted = [...points].sort((a, b) => a - b);
    for (let k = 0; k + 1 < sorted.length; k++) {
      const lo = sorted[k]!;
      const hi = sorted[k + 1]!;
      steps.push({ bytes: bytes.subarray(lo, hi), frames: starts.filter((s) => s >= lo && s < hi).length });
    }
    frames += run.length;
    run = [];
  };
  for (const e of entries) {
    if (Buffer.isBuffer(e)) run.push(e);
    else {
      flush();
      steps.push({ act: e });
    }
  }
  flush();
  return { steps, frames };
}

const setupArb: fc.Arbitrary<SessionSetup> = fc.record({
  acceptBacklog: fc.constantFrom(256, 3),
  maxStreamWindowSize: fc.constantFrom(INITIAL_WINDOW, 4 * INITIAL_WINDOW),
  maxFrameSize: fc.constantFrom(64 * 1024, 1024, 5000),
  streamOpenTimeout: fc.constantFrom(75_000, 15),
  streamCloseTimeout: fc.constantFrom(300_000, 15),
  connectionWriteTimeout: fc.constantFrom(10_000, 40),
  enableKeepAlive: fc.boolean(),
  keepAliveInterval: fc.constantFrom(10, 30_000),
  keepAliveCloseOnTimeout: fc.boolean(),
});

/**
 * A whole scenario. `maxItems` bounds the generated items (a flood counts as one item but
 * brings up to 500 frames); `hostility` 0 keeps to sensible frames.
 */
export function scenarioArb(opts: { role?: Role; maxItems?: number } = {}): fc.Arbitrary<Scenario> {
  const maxItems = opts.maxItems ?? 60;
  const roleArb = opts.role ? fc.constant(opts.role) : fc.constantFrom<Role>('client', 'server');
  return roleArb.chain((role) => {
    const frameItems = (hostility: number): fc.Arbitrary<Buffer[]> =>
      hostility === 0
        ? sensibleFrames(role)
        : fc.oneof({ weight: 20, arbitrary: sensibleFrames(role) }, { weight: hostility, arbitrary: hostileFrames(role) });
    return fc.constantFrom(0, 0, 1, 3).chain((hostility) =>
      fc
        .record({
          items: fc.array(
            fc.oneof({ weight: 3, arbitrary: frameItems(hostility) }, { weight: 2, arbitrary: localAction.map((a) => [a]) }),
            { maxLength: maxItems, size: 'max' },
          ),
          mutations: fc.oneof({ weight: 3, arbitrary: fc.constant([] as Mutation[]) }, { weight: 1, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }) }),
          cuts: fc.array(fc.nat(), { maxLength: maxItems * 2, size: 'max' }),
          acceptMode: fc.constantFrom('onStream' as const, 'accept' as const),
          config: setupArb,
          peerReads: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
          finale: fc.constantFrom<Finale>('hangup', 'half-close', 'goaway-close', 'close', 'destroy'),
        })
        .map(({ items, mutations, cuts, acceptMode, config, peerReads, finale }) => {
          const entries: Entry[] = items.flat();
          for (const m of mutations) mutate(entries, m);
          const { steps, frames } = cutIntoSteps(entries, cuts);
          return { role, rejectInbound: role === 'client', acceptMode, config, peerReads, steps, finale, frames };
        }),
    );
  });
}

/** Short text of a scenario for failure reports. */
export function describeScenario(s: Scenario): string {
  const head = `${s.role}${s.rejectInbound ? ' rejectInbound' : ` ${s.acceptMode}`} peerReads=${s.peerReads} finale=${s.finale} ${JSON.stringify(s.config)}`;
  const steps = s.steps.map((st) => ('act' in st ? `  ${JSON.stringify(st.act)}` : `  peer ${st.bytes.length} B ${st.bytes.subarray(0, 48).toString('hex')}${st.bytes.length > 48 ? '…' : ''}`));
  return [head, ...steps].join('\n');
}
