import type { ReadPacer } from '../yamux/index.js';

/** How many turns in a row a pod over its share may be held back: it is slowed, never starved. */
const MAX_DEFERRED_TURNS = 3;

/**
 * The event loop shared out between the pods of one process (host mode). Each pod reads for at
 * most `sliceMs` per loop turn; a turn ends in the loop's check phase (setImmediate), after every
 * socket that was ready has had its callback, so readers paused there resume behind their
 * neighbours, not ahead of them.
 *
 * Equal slices are not enough against a pod that always has work (a bulk transfer): it seldom
 * fills a slice, yet it reads in every turn, and a neighbour that wakes up with a burst (a 4 MiB
 * echo) gets half the loop where beside per-pod daemons it would have had a core of its own. So
 * each pod's read work is also kept over time, decaying with a time constant of `decayMs`, and a
 * pod that has used more than twice as much as a neighbour that reads in the same turn is over
 * its share: in its next turn it reads one piece, then waits up to MAX_DEFERRED_TURNS turns
 * while such a neighbour keeps reading. The burst so runs at most of the loop's speed until the
 * two have used alike; with nobody else reading, nobody waits.
 */
export class LoopShare {
  private turnScheduled = false;
  private charged = new Set<TurnPacer>();
  private spare = new Set<TurnPacer>();
  /** Counts the loop turns this share has ended. */
  turn = 0;

  constructor(
    readonly sliceMs: number,
    readonly decayMs = 200,
  ) {}

  /** A pod's own pacer. */
  pacer(): TurnPacer {
    return new TurnPacer(this);
  }

  /** @internal A pacer read or waits in this turn. */
  joinTurn(pacer: TurnPacer): void {
    this.charged.add(pacer);
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(this.nextTurn);
  }

  private readonly nextTurn = (): void => {
    this.turnScheduled = false;
    const turn = this.charged;
    this.charged = this.spare;
    this.spare = turn;
    this.turn++;
    const now = performance.now();
    let lightest = Infinity;
    for (const p of turn) lightest = Math.min(lightest, p.decay(now));
    for (const p of turn) {
      const over = lightest < p.recentMs / 2;
      if (over) p.yieldsIn = this.turn;
      if (over && p.waiting && p.deferredTurns < MAX_DEFERRED_TURNS) p.deferTurn();
      else p.newTurn();
    }
    turn.clear();
  };
}

/** One pod's share of the loop (LoopShare): its guest channel, clients and console read through it. */
export class TurnPacer implements ReadPacer {
  private usedMs = 0;
  private waitingResumes: (() => void)[] = [];
  /** Read work done recently, decaying with the share's `decayMs`. */
  recentMs = 0;
  private decayedAt = performance.now();
  deferredTurns = 0;
  /** The turn in which this pod is over its share: one read, then it waits. */
  yieldsIn = -1;

  constructor(private readonly share: LoopShare) {}

  get waiting(): boolean {
    return this.waitingResumes.length > 0;
  }

  charge(startedAt: number): boolean {
    const now = performance.now();
    const spent = now - startedAt;
    this.decay(now);
    this.usedMs += spent;
    this.recentMs += spent;
    this.share.joinTurn(this);
    return this.usedMs < this.share.sliceMs && this.yieldsIn !== this.share.turn;
  }

  later(resume: () => void): void {
    this.waitingResumes.push(resume);
    this.share.joinTurn(this);
  }

  /** @internal Ages the recent work to `now`; returns it. */
  decay(now: number): number {
    this.recentMs *= Math.exp((this.decayedAt - now) / this.share.decayMs);
    this.decayedAt = now;
    return this.recentMs;
  }

  /** @internal Held back one more turn: its readers stay paused. */
  deferTurn(): void {
    this.deferredTurns++;
    this.usedMs = 0;
    this.share.joinTurn(this);
  }

  /** @internal A fresh slice: paused readers resume. */
  newTurn(): void {
    this.usedMs = 0;
    this.deferredTurns = 0;
    if (this.waitingResumes.length === 0) return;
    const resumes = this.waitingResumes;
    this.waitingResumes = [];
    for (const resume of resumes) resume();
  }
}
