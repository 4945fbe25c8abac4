/** Token bucket of `perSecond` lines, holding `burst` at most (default one second's worth); 0 means unlimited. */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private readonly burst: number;
  dropped = 0;

  constructor(
    private readonly perSecond: number,
    burst?: number,
  ) {
    this.burst = Math.max(1, burst ?? perSecond);
    this.tokens = this.burst;
  }

  allow(): boolean {
    if (this.perSecond <= 0) return true;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.dropped++;
    return false;
  }

  /** Whether no line would be allowed now (nothing is counted). */
  exhausted(): boolean {
    if (this.perSecond <= 0) return false;
    this.refill();
    return this.tokens < 1;
  }

  /** Milliseconds until the next one would be allowed (0: now). */
  msUntilNext(): number {
    if (this.perSecond <= 0) return 0;
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }

  /** The bucket as it stands (a handover takes it along; `last` is wall clock). */
  get state(): { tokens: number; last: number; dropped: number } {
    return { tokens: this.tokens, last: this.last, dropped: this.dropped };
  }

  set state(s: { tokens: number; last: number; dropped: number }) {
    this.tokens = Math.min(this.burst, s.tokens);
    this.last = s.last;
    this.dropped = s.dropped;
  }

  /** How many were dropped since the last call. */
  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }
}
