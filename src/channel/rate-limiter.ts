/** Token bucket of `perSecond` lines with a one-second burst; 0 means unlimited. */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  dropped = 0;

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }

  allow(): boolean {
    if (this.perSecond <= 0) return true;
    const now = Date.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.dropped++;
    return false;
  }

  /** The bucket as it stands (a handover takes it along; `last` is wall clock). */
  get state(): { tokens: number; last: number; dropped: number } {
    return { tokens: this.tokens, last: this.last, dropped: this.dropped };
  }

  set state(s: { tokens: number; last: number; dropped: number }) {
    this.tokens = Math.min(this.perSecond, s.tokens);
    this.last = s.last;
    this.dropped = s.dropped;
  }

  /** How many were dropped since the last call. */
  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}
