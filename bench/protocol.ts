// The messages between the orchestrator (run.ts) and the load-generator child (load-client.ts).

/** Where a load generator connects: a Unix socket (plain server or the proxy's listen socket),
 * or a yamux session of its own on a guest's mux socket (our engine without the proxy hop). */
export type Target = { kind: 'socket'; path: string } | { kind: 'yamux'; path: string };

export type Direction = 'up' | 'down' | 'echo';

export type Job =
  | {
      type: 'throughput';
      target: Target;
      dir: Direction;
      streams: number;
      bytesPerStream: number;
      /** Check every byte by sha256 (outside the hot path otherwise: only counts are checked). */
      verify: boolean;
    }
  | { type: 'rr'; target: Target; count: number; warmup: number; size: number }
  | { type: 'connect-rr'; target: Target; count: number; warmup: number; size: number }
  | { type: 'storm'; target: Target; clients: number; size: number }
  | { type: 'hold'; target: Target; count: number; batch: number }
  | {
      type: 'neighbours';
      /**
       * The round trips (the figure) or the echoes: run by two processes, so that the echoes'
       * copies and comparisons never hold up the loop that times the round trips.
       */
      part: 'round trips' | 'echoes';
      /** Each neighbour: one long-lived connection with a `size`-byte round trip every `intervalMs`. */
      targets: Target[];
      intervalMs: number;
      size: number;
      durationMs: number;
      /** A checked echo of `echoBytes` on a connection of its own, every `echoEveryMs` per neighbour. */
      echoBytes: number;
      echoEveryMs: number;
    }
  | { type: 'churn'; target: Target; clients: number; size: number; durationMs: number }
  | { type: 'release' }
  | { type: 'close-sessions' }
  | { type: 'exit' };

export interface ThroughputResult {
  seconds: number;
  bytes: number;
  errors: string[];
}

export interface LatencyResult {
  /** Round-trip times in microseconds (warm-up excluded). */
  samplesUs: number[];
  errors: string[];
}

export interface NeighboursResult {
  /** Round trips of every neighbour, µs. */
  samplesUs: number[];
  /** Checksummed echoes, ms each. */
  echoesMs: number[];
  /** Wrong bytes, resets, EOFs: anything a neighbour should never see. */
  errors: string[];
}

export interface ChurnResult {
  connections: number;
  /** How the connections ended, by code ('answered', 'reset', 'eof', ...). */
  outcomes: Record<string, number>;
}

export interface StormResult {
  /** Time from the first connect until the last client had its whole answer, ms. */
  lastAnswerMs: number;
  served: number;
  refused: number;
  errors: Record<string, number>;
}

export interface HoldResult {
  open: number;
  errors: Record<string, number>;
  ms: number;
}

export type JobResult = ThroughputResult | LatencyResult | NeighboursResult | ChurnResult | StormResult | HoldResult | Record<string, never>;

export interface Request {
  id: number;
  job: Job;
}

export type Response = { id: number; ok: true; result: JobResult } | { id: number; ok: false; error: string };
