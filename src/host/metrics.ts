import type { PodView } from './pod-view.js';
import type { ReclaimCounts } from './reclaim-stats.js';

/** One pod thread of a host, for its metrics. */
export interface ThreadStats {
  thread: number;
  pods: number;
  /** Seconds its event loop has been busy since the thread started. */
  busySeconds: number;
  /** Its CPU priority is lowered while its loop is busy. */
  lowered: boolean;
  /** What its memory reclaimer did since the thread started. */
  reclaims: ReclaimCounts;
  /** Pods ended on it since its last reclaim. */
  reclaimDue: boolean;
}

/** What a host adds to its pods' metrics. */
export interface HostStats {
  threads: ThreadStats[];
  /** Every thread's memory reclaims (the main thread's too), by outcome. */
  reclaims: ReclaimCounts;
  /** Threads (the main thread too) where pods ended since their last reclaim. */
  reclaimsDue: number;
}

/** Gauges and counters per pod, labelled sandbox="ID" (Prometheus text format 0.0.4). */
const SERIES: { name: string; type: 'gauge' | 'counter'; help: string; value: (p: PodView) => number }[] = [
  { name: 'kata_proxy_pod_up', type: 'gauge', help: "1 while the pod's yamux session with its guest is up.", value: (p) => (p.state === 'serving' ? 1 : 0) },
  { name: 'kata_proxy_pod_clients', type: 'gauge', help: 'Client connections on the listen socket.', value: (p) => p.clients },
  { name: 'kata_proxy_pod_streams', type: 'gauge', help: 'Live yamux streams.', value: (p) => p.streams },
  { name: 'kata_proxy_pod_connections_total', type: 'counter', help: 'Client connections served.', value: (p) => p.connectionsServed },
  { name: 'kata_proxy_pod_received_bytes_total', type: 'counter', help: 'Bytes from the guest to the clients.', value: (p) => p.bytesIn },
  { name: 'kata_proxy_pod_sent_bytes_total', type: 'counter', help: 'Bytes from the clients to the guest.', value: (p) => p.bytesOut },
  { name: 'kata_proxy_pod_uptime_seconds', type: 'gauge', help: 'Seconds since the pod was added.', value: (p) => p.uptimeMs / 1000 },
];

const STATES = ['connecting', 'serving', 'stopping', 'stopped'] as const;

/** The exposition for these pods and this process. Written out: it is a few lines of text. */
export function renderMetrics(pods: readonly PodView[], host?: HostStats): string {
  const threads = host?.threads ?? [];
  const out: string[] = [];
  const byState = new Map<string, number>(STATES.map((s) => [s, 0]));
  for (const p of pods) byState.set(p.state, (byState.get(p.state) ?? 0) + 1);
  header(out, 'kata_proxy_pods', 'gauge', 'Pods in this process, by state.');
  for (const [state, n] of byState) out.push(`kata_proxy_pods{state="${state}"} ${n}`);
  const labels = pods.map((p) => `{sandbox="${escapeLabel(p.id)}"}`);
  for (const s of SERIES) {
    header(out, s.name, s.type, s.help);
    pods.forEach((p, i) => out.push(`${s.name}${labels[i]} ${s.value(p)}`));
  }
  if (threads.length > 0) {
    header(out, 'kata_proxy_host_thread_pods', 'gauge', 'Pods on each pod thread.');
    for (const t of threads) out.push(`kata_proxy_host_thread_pods{thread="${t.thread}"} ${t.pods}`);
    // rate() of it is the thread's share of a core: a thread near 1 delays its pods.
    header(out, 'kata_proxy_host_thread_busy_seconds_total', 'counter', "Seconds each pod thread's event loop has been busy.");
    for (const t of threads) out.push(`kata_proxy_host_thread_busy_seconds_total{thread="${t.thread}"} ${t.busySeconds}`);
    header(out, 'kata_proxy_host_thread_lowered', 'gauge', "1 while a pod thread runs at a lower CPU priority, its loop busy: its pods wait for the others' when the cores are contended.");
    for (const t of threads) out.push(`kata_proxy_host_thread_lowered{thread="${t.thread}"} ${t.lowered ? 1 : 0}`);
  }
  if (host) {
    // Each runs once pod ends stop: a count that stops moving while pods end says the host no
    // longer gives their memory back.
    header(out, 'kata_proxy_host_memory_reclaims_total', 'counter', 'Memory reclaims after pods ended, by outcome: skipped (too little to give back), collected (the JavaScript heap), trimmed (the C heap too).');
    for (const [outcome, n] of Object.entries(host.reclaims)) out.push(`kata_proxy_host_memory_reclaims_total{outcome="${outcome}"} ${n}`);
    header(out, 'kata_proxy_host_memory_reclaims_due', 'gauge', 'Threads where pods ended since their last memory reclaim (it runs a second after the last end).');
    out.push(`kata_proxy_host_memory_reclaims_due ${host.reclaimsDue}`);
  }
  const mem = process.memoryUsage();
  header(out, 'process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
  out.push(`process_resident_memory_bytes ${mem.rss}`);
  header(out, 'nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.');
  out.push(`nodejs_heap_used_bytes ${mem.heapUsed}`);
  return `${out.join('\n')}\n`;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function header(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}
