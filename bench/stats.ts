// Small statistics helpers: medians, quantiles and a summary (median with its spread).

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Interquartile range (q1..q3). */
  q1: number;
  q3: number;
  n: number;
}

/** Quantile q in [0, 1] of `values` (linear interpolation between order statistics). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return quantileSorted(sorted, q);
}

export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: quantileSorted(sorted, 0.5),
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
    q1: quantileSorted(sorted, 0.25),
    q3: quantileSorted(sorted, 0.75),
    n: sorted.length,
  };
}

/** Latency percentiles of one sample set (microseconds in, microseconds out). */
export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  n: number;
}

export function percentiles(samples: Float64Array | readonly number[]): Percentiles {
  const sorted = Float64Array.from(samples).sort();
  const arr = Array.from(sorted);
  return {
    p50: quantileSorted(arr, 0.5),
    p99: quantileSorted(arr, 0.99),
    p999: quantileSorted(arr, 0.999),
    max: arr[arr.length - 1] ?? NaN,
    n: arr.length,
  };
}

/** a / b, or NaN when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}
