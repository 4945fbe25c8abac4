import { BUSY } from './busy-priority.js';

/** One pod thread over the last period: its loop's busy share, and each pod's traffic. */
export interface ThreadLoad {
  thread: number;
  /** 0..1: the share of the period its event loop was busy. */
  utilization: number;
  pods: { id: string; bytes: number }[];
}

export interface RebalanceRule {
  /** A thread busier than this shares its loop too much to leave its quieter pods on it. */
  hot: number;
  /** ... when another thread is at least this much less busy. */
  margin: number;
}

export const REBALANCE_RULE: RebalanceRule = { hot: BUSY, margin: 0.25 };

/**
 * Which pod to move, and where: from the busiest thread, when it is hot and another is clearly
 * less busy, its quietest pod (of those `movable`) goes to the least busy thread. The busiest pod stays: what delays
 * the others is sharing its loop, and a quiet pod is the cheapest to move. One move at a time,
 * so that the loads are measured again before the next.
 */
export function chooseMove(loads: readonly ThreadLoad[], movable: (id: string) => boolean = () => true, rule: RebalanceRule = REBALANCE_RULE): { id: string; to: number } | null {
  if (loads.length < 2) return null;
  let hot = loads[0]!;
  let cool = loads[0]!;
  for (const l of loads) {
    if (l.utilization > hot.utilization) hot = l;
    if (l.utilization < cool.utilization || (l.utilization === cool.utilization && l.pods.length < cool.pods.length)) cool = l;
  }
  if (hot === cool || hot.pods.length < 2 || hot.utilization < rule.hot || hot.utilization - cool.utilization < rule.margin) return null;
  let quietest: ThreadLoad['pods'][number] | undefined;
  for (const p of hot.pods) if (movable(p.id) && (!quietest || p.bytes < quietest.bytes)) quietest = p;
  return quietest ? { id: quietest.id, to: cool.thread } : null;
}

/** What the rebalancer needs of the host. */
export interface RebalanceHost {
  /** Each live pod thread's busy share since the last call. */
  utilizations(): { thread: number; utilization: number }[];
  /** The live pods on a thread, with their bytes moved so far. */
  podsOn(thread: number): { id: string; bytes: () => Promise<number> }[];
  /** Whether a pod of that id is still listed. */
  has(id: string): boolean;
  /** Moves the pod; false when it could not move now. */
  move(id: string, to: number): Promise<boolean>;
}

/** A pod that could not move (a peer not reading) is not tried again for this long. */
const UNMOVABLE_MS = 30_000;

/**
 * Every `everyMs`, compares the pod threads' loads over the period and moves a quiet pod off a
 * thread a busy pod keeps hot (chooseMove): a pod then shares its loop with a busy neighbour
 * only as long as it takes to notice.
 */
export class Rebalancer {
  private readonly timer: NodeJS.Timeout;
  /** Each pod's bytes moved at the last check. */
  private readonly lastBytes = new Map<string, number>();
  /** Pods that could not move lately, and until when they are left alone. */
  private readonly unmovable = new Map<string, number>();
  private running = false;

  constructor(
    private readonly host: RebalanceHost,
    everyMs: number,
    private readonly paused: () => boolean,
  ) {
    this.timer = setInterval(() => void this.tick(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running || this.paused()) return;
    this.running = true;
    try {
      await this.check();
    } finally {
      this.running = false;
    }
  }

  private async check(): Promise<void> {
    const use = this.host.utilizations();
    if (use.length < 2) return;
    const hottest = use.reduce((a, b) => (b.utilization > a.utilization ? b : a));
    // Traffic is asked of the hot thread's pods only, and only when it is hot.
    const pods = hottest.utilization >= REBALANCE_RULE.hot ? this.host.podsOn(hottest.thread) : [];
    const traffic = await Promise.all(
      pods.map(async (p) => {
        const total = await p.bytes().catch(() => 0);
        const before = this.lastBytes.get(p.id);
        this.lastBytes.set(p.id, total);
        return { id: p.id, bytes: before === undefined ? -1 : total - before };
      }),
    );
    const now = Date.now();
    for (const id of this.lastBytes.keys()) if (!this.host.has(id)) this.lastBytes.delete(id);
    for (const [id, until] of this.unmovable) if (until <= now || !this.host.has(id)) this.unmovable.delete(id);
    // A pod seen for the first time has no traffic to compare yet: decide next time.
    if (traffic.some((t) => t.bytes < 0)) return;
    const loads: ThreadLoad[] = use.map((u) => ({
      ...u,
      pods: u.thread === hottest.thread ? traffic : this.host.podsOn(u.thread).map((p) => ({ id: p.id, bytes: 0 })),
    }));
    // A pod that could not move lately still counts on its thread; it is only not the one moved.
    const move = chooseMove(loads, (id) => !this.unmovable.has(id));
    if (move && !(await this.host.move(move.id, move.to))) this.unmovable.set(move.id, Date.now() + UNMOVABLE_MS);
  }
}
