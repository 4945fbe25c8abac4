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

export const REBALANCE_RULE: RebalanceRule = { hot: 0.5, margin: 0.25 };

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
