import type { ReadPacer } from '../yamux/index.js';

/**
 * One pod's share of the event loop: at most `sliceMs` of read work per loop turn. A turn ends in
 * the loop's check phase (setImmediate), after every socket that was ready has had its callback,
 * so readers paused here resume behind their neighbours, not ahead of them.
 */
export class TurnPacer implements ReadPacer {
  private usedMs = 0;
  private turnScheduled = false;
  private waiting: (() => void)[] = [];

  constructor(private readonly sliceMs: number) {}

  charge(startedAt: number): boolean {
    this.usedMs += performance.now() - startedAt;
    this.scheduleTurn();
    return this.usedMs < this.sliceMs;
  }

  later(resume: () => void): void {
    this.waiting.push(resume);
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(this.nextTurn);
  }

  private readonly nextTurn = (): void => {
    this.turnScheduled = false;
    this.usedMs = 0;
    const resumes = this.waiting;
    if (resumes.length === 0) return;
    this.waiting = [];
    for (const resume of resumes) resume();
  };
}
