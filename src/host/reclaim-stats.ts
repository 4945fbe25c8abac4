import type { Logger } from 'pino';
import { RECLAIM_OUTCOMES, type ReclaimOutcome, type Reclaimed } from './memory-reclaimer.js';

export type ReclaimCounts = Record<ReclaimOutcome, number>;

const noReclaims = (): ReclaimCounts => ({ skipped: 0, collected: 0, trimmed: 0 });

/** One thread's reclaims (its MemoryReclaimer's): counted for /metrics, logged when they gave memory back. */
export class ReclaimStats {
  readonly counts = noReclaims();
  /** Pods ended since its last reclaim: one is due. */
  due = false;

  constructor(
    private readonly log: Logger,
    private readonly fields: Record<string, unknown> = {},
  ) {}

  markDue(): void {
    this.due = true;
  }

  record(r: Reclaimed): void {
    this.due = false;
    this.counts[r.outcome]++;
    if (r.outcome === 'skipped') return;
    const mib = (n: number) => Math.round((n / 1048576) * 100) / 100;
    this.log.debug({ ...this.fields, rssBeforeMiB: mib(r.rssBefore), rssAfterMiB: mib(r.rssAfter), trimMs: Math.round(r.trimMs * 10) / 10 }, 'memory of ended pods given back');
  }
}

/** The reclaims of every thread of the host, by outcome. */
export function totalReclaims(all: readonly ReclaimCounts[]): ReclaimCounts {
  const total = noReclaims();
  for (const c of all) for (const o of RECLAIM_OUTCOMES) total[o] += c[o];
  return total;
}
