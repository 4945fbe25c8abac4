/** A bounded set of recently closed stream ids: late frames for them are expected, not errors. */
export class RecentIds {
  private readonly ring: number[];
  private readonly members = new Set<number>();
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<number>(capacity).fill(-1);
  }

  add(id: number): void {
    if (this.members.has(id)) return;
    const evicted = this.ring[this.next]!;
    if (evicted >= 0) this.members.delete(evicted);
    this.ring[this.next] = id;
    this.members.add(id);
    this.next = (this.next + 1) % this.capacity;
  }

  has(id: number): boolean {
    return this.members.has(id);
  }
}
