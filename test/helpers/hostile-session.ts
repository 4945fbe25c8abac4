// Plays a hostile-frames.ts scenario against a real Session over a real Unix socket pair and
// reports every breach of what the engine promises an untrusted peer: nothing escapes as an
// exception, every end is a typed YamuxError (or clean), memory stays bounded by windows and our
// own activity, and what we send back is valid yamux that hashicorp would accept.
import { setTimeout as delay } from 'node:timers/promises';
import { Session, YamuxError, type Stream } from '../../src/yamux/index.js';
import { F, FrameParser, INITIAL_WINDOW, LinkChecker, T, describeFrame, encodeFrame, type RawFrame } from './frames.js';
import type { LocalAction, Scenario } from './hostile-frames.js';
import { unixSocketPair } from './socket-pair.js';

export interface Outcome {
  /** How the session ended: 'clean' or the error's name (its code for a bare YamuxError). */
  end: string;
  /** How our streams ended, by the same naming ('end' for the peer's FIN read to the end). */
  streamEnds: Record<string, number>;
  /** Peer frames written while the session was still alive. */
  framesLive: number;
  violations: string[];
}

/** Answers queued beyond this end the session (session.ts MAX_QUEUED_ANSWERS). */
const ANSWER_CAP = 4096;
const HEADER = 12;

const escapes: string[] = [];
let watching = false;

/** Exceptions and rejections that escaped anything, since the process started. */
export function escapedErrors(): readonly string[] {
  if (!watching) {
    watching = true;
    process.on('uncaughtException', (err) => escapes.push(`uncaught exception: ${err.stack ?? err}`));
    process.on('unhandledRejection', (err) => escapes.push(`unhandled rejection: ${(err as Error)?.stack ?? err}`));
  }
  return escapes;
}

function errorName(err: Error): string {
  return err instanceof YamuxError && err.name === 'YamuxError' ? err.code : err.name;
}

/**
 * frames.ts's LinkChecker over our output (side a) and the peer's frames (side b), with one
 * allowance for a hostile peer: it may re-open a stream id once the stream is gone, and our ACK
 * starts a new incarnation (fresh FIN/RST state). Its credit is at most what the peer granted
 * since its first SYN for the id; the SYNs and our answers cross on the wire, so which SYN an
 * ACK answers is not known here (exact for ids used once, lenient for reused ones).
 */
class OutputChecker {
  readonly link = new LinkChecker();
  readonly violations: string[] = [];
  private readonly ours = new FrameParser();
  private readonly theirs = new FrameParser();
  private theirsUnreadable = false;
  private readonly reopened = new Map<number, number>();

  constructor(private readonly maxWindow: number) {}

  peerSent(chunk: Buffer): void {
    if (this.theirsUnreadable) return;
    try {
      this.theirs.push(chunk);
    } catch {
      this.theirsUnreadable = true; // bad version: the session stops reading here too
    } finally {
      for (const f of this.theirs.frames) this.peerFrame(f);
      this.theirs.frames.length = 0;
    }
    // A length no window admits: the session refuses it, nothing after it counts.
    if (this.theirs.pending > this.maxWindow + HEADER) this.theirsUnreadable = true;
  }

  weSent(chunk: Buffer): void {
    try {
      this.ours.push(chunk);
    } catch (err) {
      this.violations.push(`we sent an invalid frame: ${(err as Error).message}`);
    } finally {
      for (const f of this.ours.frames) this.ourFrame(f);
      this.ours.frames.length = 0;
    }
  }

  ourViolations(): string[] {
    return [...this.violations, ...this.link.violations.filter((v) => v.startsWith('a:'))];
  }

  private peerFrame(f: RawFrame): void {
    if (f.type === T.Data || f.type === T.WindowUpdate) {
      const delta = f.type === T.WindowUpdate ? f.length : 0;
      const pending = this.reopened.get(f.streamId);
      if (pending !== undefined) this.reopened.set(f.streamId, pending + delta);
      else if (f.flags & F.SYN) this.reopened.set(f.streamId, INITIAL_WINDOW + delta);
    }
    this.link.frame('b', f);
  }

  private ourFrame(f: RawFrame): void {
    const what = describeFrame(f, { payload: false });
    if (f.type > T.GoAway) this.violations.push(`we sent an unknown frame type: ${what}`);
    if ((f.type <= T.WindowUpdate) === (f.streamId === 0)) this.violations.push(`we sent ${what} on the wrong stream id`);
    const credit = this.reopened.get(f.streamId);
    if (f.type === T.WindowUpdate && f.flags & F.ACK && credit !== undefined) {
      const track = this.link.streams.get(f.streamId);
      if (track) {
        track.fin.a = false;
        track.rst.a = false;
        track.credit.a = Math.max(track.credit.a, credit);
      }
    }
    this.link.frame('a', f);
  }
}

interface Held {
  stream: Stream;
  outcome: string;
  closed: Promise<void>;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function within<T>(p: Promise<T>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  const done = await Promise.race([p.then(() => true as const), timeout]);
  clearTimeout(timer);
  return done;
}

export async function runScenario(sc: Scenario): Promise<Outcome> {
  const escapesBefore = escapedErrors().length;
  const violations: string[] = [];
  const typed = (what: string) => (err: unknown): void => {
    if (!(err instanceof YamuxError)) violations.push(`${what} failed with an untyped error: ${(err as Error)?.stack ?? err}`);
  };

  const pair = await unixSocketPair();
  const peer = pair.b;
  const checker = new OutputChecker(sc.config.maxStreamWindowSize);
  peer.on('error', () => {});
  peer.on('data', (chunk: Buffer) => checker.weSent(chunk));
  const peerClosed = new Promise<void>((r) => peer.once('close', () => r()));
  if (!sc.peerReads) peer.pause();

  const held: Held[] = [];
  const hold = (stream: Stream): void => {
    const h: Held = { stream, outcome: 'open', closed: new Promise((r) => stream.once('close', () => r())) };
    stream.on('data', () => {});
    stream.on('end', () => {
      if (h.outcome === 'open') h.outcome = 'end';
    });
    stream.on('error', (err: Error) => {
      typed(`stream ${stream.id}`)(err);
      h.outcome = errorName(err);
    });
    held.push(h);
  };

  const session = new Session(pair.a, {
    role: sc.role,
    rejectInbound: sc.rejectInbound,
    config: { ...sc.config },
    ...(sc.role === 'server' && sc.acceptMode === 'onStream' ? { onStream: hold } : {}),
  });
  let sessionError: Error | undefined;
  const sessionClosed = new Promise<void>((r) =>
    session.once('close', (err?: Error) => {
      sessionError = err;
      r();
    }),
  );

  let written = 0;
  let peerBytes = 0;
  let actions = 0;
  let framesLive = 0;
  const backlog = sc.config.acceptBacklog;

  const checkBounds = (): void => {
    const max = sc.config.maxStreamWindowSize;
    for (const st of session.streamStats()) {
      if (st.bufferedIn > max) violations.push(`stream ${st.id} holds ${st.bufferedIn} B received, over its window ${max}`);
    }
    if (session.streamCount > held.length + backlog + 1) {
      violations.push(`${session.streamCount} streams in the table, ${held.length} ours and a backlog of ${backlog}`);
    }
    // Our own frames are bounded by our streams and actions; answers to the peer by the cap.
    const ownFrames = 2 * (ANSWER_CAP + 1) + 8 * (held.length + backlog) + 2 * actions + Math.ceil(peerBytes / (max / 2)) + 16;
    const control = (session.writer as unknown as { control?: unknown[] }).control;
    if (!Array.isArray(control)) violations.push('FrameWriter has no control queue any more: update hostile-session.ts');
    else if (control.length > ownFrames) violations.push(`FrameWriter queues ${control.length} control frames (bound ${ownFrames})`);
    const budget = 13 * written + HEADER * ownFrames + 64 * 1024;
    if (pair.a.writableLength > budget) violations.push(`link buffers ${pair.a.writableLength} B (bound ${budget})`);
  };

  const queuedInbound = (): number => [...session.streams()].filter((s) => s.stats().state === 'syn-received').length;
  const live = (): Held[] => held.filter((h) => !h.stream.destroyed);
  const pick = (s: number): Stream | undefined => {
    const l = live();
    return l.length ? l[s % l.length]!.stream : undefined;
  };

  const act = async (a: LocalAction): Promise<void> => {
    actions++;
    switch (a.do) {
      case 'open':
        try {
          hold(session.open());
        } catch (err) {
          typed('open()')(err);
        }
        break;
      case 'write': {
        const s = pick(a.s);
        if (!s || s.writableEnded) break;
        written += a.size;
        try {
          s.write(Buffer.alloc(a.size, 0x61), (err) => {
            // Writes Node still held when the stream was destroyed fail with its own code.
            if (err && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_DESTROYED') typed(`write on stream ${s.id}`)(err);
          });
        } catch (err) {
          violations.push(`write() threw: ${(err as Error).stack}`);
        }
        break;
      }
      case 'end': {
        const s = pick(a.s);
        if (s && !s.writableEnded) s.end();
        break;
      }
      case 'reset': {
        const s = pick(a.s);
        const h = held.find((x) => x.stream === s);
        if (s && h) {
          h.outcome = 'reset by us';
          s.reset();
        }
        break;
      }
      case 'pause':
        pick(a.s)?.pause();
        break;
      case 'resume':
        pick(a.s)?.resume();
        break;
      case 'accept':
        // Only a stream already queued: a pending accept() resolved while the session reads can
        // see the stream fail before the awaiting code attaches its 'error' listener (reported).
        if (!sc.rejectInbound && sc.acceptMode === 'accept' && queuedInbound() > 0) {
          session.accept().then(hold, typed('accept()'));
        }
        break;
      case 'ping':
        session.ping().then(() => {}, typed('ping()'));
        break;
      case 'goAway':
        session.goAway();
        break;
      case 'close':
        void session.close(30);
        break;
      case 'sleep':
        await delay(a.ms);
        break;
    }
  };

  try {
    for (const step of sc.steps) {
      if ('act' in step) await act(step.act);
      else {
        if (!session.closed) framesLive += step.frames;
        if (!peer.destroyed) {
          checker.peerSent(step.bytes);
          peerBytes += step.bytes.length;
          peer.write(step.bytes);
        }
        await tick();
      }
      checkBounds();
    }

    if (!sc.peerReads) peer.resume();
    // An owner reads to the end eventually: a paused stream keeps its EOF and never closes.
    for (const h of held) h.stream.resume();
    for (let i = 0; i < 3; i++) await tick();
    switch (sc.finale) {
      case 'hangup':
        peer.destroy();
        break;
      case 'half-close':
        peer.end();
        break;
      case 'goaway-close':
        if (!peer.destroyed) peer.write(encodeFrame(T.GoAway, 0, 0, 0));
        await tick();
        void session.close(30);
        break;
      case 'close':
        void session.close(30);
        break;
      case 'destroy':
        session.destroy();
        break;
    }
    if (!(await within(sessionClosed, 3000))) violations.push(`session did not end after the finale (${sc.finale})`);
    if (!(await within(Promise.all(held.map((h) => h.closed)), 3000))) {
      violations.push(`streams never closed: ${held.filter((h) => !h.stream.destroyed).map((h) => h.stream.id).join(' ')}`);
    }
    if (!(await within(peerClosed, 2000))) peer.destroy();

    if (sessionError !== undefined && !(sessionError instanceof YamuxError)) {
      violations.push(`session ended with an untyped error: ${sessionError.stack}`);
    }
    if (sessionError instanceof YamuxError && sessionError.code === 'ERR_YAMUX_INTERNAL') {
      violations.push(`peer input caused an internal error: ${(sessionError.cause as Error)?.stack ?? sessionError.message}`);
    }
    if (session.streamCount !== 0) violations.push(`${session.streamCount} streams left in the table of an ended session`);
    violations.push(...checker.ourViolations());
  } finally {
    session.destroy();
    pair.close();
  }
  const escaped = escapedErrors().slice(escapesBefore);
  violations.push(...escaped);

  const streamEnds: Record<string, number> = {};
  for (const h of held) streamEnds[h.outcome] = (streamEnds[h.outcome] ?? 0) + 1;
  return {
    end: sessionError ? errorName(sessionError) : 'clean',
    streamEnds,
    framesLive,
    violations,
  };
}
