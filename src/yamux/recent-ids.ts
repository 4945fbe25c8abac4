/** A bounded set of recently closed stream ids: late frames for them are expected, not errors. */
export class RecentIds {
  /** Grows up to `capacity` (an idle session must not hold a full ring: host mode has thousands), then wraps. */
  private readonly ring: number[] = [];
  private readonly members = new Set<number>();
  private next = 0;

  constructor(private readonly capacity: number) {}

  add(id: number): void {
    if (this.members.has(id)) return;
    if (this.ring.length < this.capacity) {
      this.ring.push(id);
    } else {
      this.members.delete(this.ring[this.next]!);
      this.ring[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.members.add(id);
  }

  /** Oldest first. */
  ids(): number[] {
    return this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  has(id: number): boolean {
    return this.members.has(id);
  }
}
