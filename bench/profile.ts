// CPU profiles of the daemon (node --cpu-prof) during 1-stream and 64-stream transfers through
// the proxy to the Go peer, one daemon per scenario so each profile shows one hot path.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeProfile, renderProfile, type ProfileSummary } from './cpuprofile.js';
import { startDaemon, type LoadClient } from './peers.js';
import type { Direction, Job, Target } from './protocol.js';

export type ProfileSpec =
  | { kind: 'throughput'; dir: Direction; streams: number; bytesPerStream: number; reps: number }
  | { kind: 'rr'; count: number; reps: number }
  | { kind: 'connect-rr'; count: number; reps: number };

function specLabel(spec: ProfileSpec): string {
  switch (spec.kind) {
    case 'throughput':
      return `${spec.dir} ×${spec.streams}`;
    case 'rr':
      return `req/resp ×${spec.count}`;
    case 'connect-rr':
      return `connect+req+close ×${spec.count}`;
  }
}

function specJob(spec: ProfileSpec, target: Target): Job {
  switch (spec.kind) {
    case 'throughput':
      return { type: 'throughput', target, dir: spec.dir, streams: spec.streams, bytesPerStream: spec.bytesPerStream, verify: false };
    case 'rr':
      return { type: 'rr', target, count: spec.count, warmup: 100, size: 64 };
    case 'connect-rr':
      return { type: 'connect-rr', target, count: spec.count, warmup: 20, size: 64 };
  }
}

export async function runProfiles(
  client: LoadClient,
  mux: string,
  socketDir: (name: string) => string,
  outDir: string,
  specs: ProfileSpec[],
  log: (line: string) => void,
): Promise<ProfileSummary[]> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const out: ProfileSummary[] = [];
  for (const spec of specs) {
    const label = specLabel(spec);
    const slug = label.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '');
    const profDir = join(outDir, slug);
    const paths = { listen: socketDir(`prof-${slug}.sock`), mux, sandbox: 'bench-profile' };
    const daemon = await startDaemon(paths, undefined, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=250']);
    const t0 = Date.now();
    const job = specJob(spec, { kind: 'socket', path: paths.listen });
    for (let i = 0; i <= spec.reps; i++) await client.run(job);
    const code = await daemon.stop();
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) {
      log(`  ${label}: no .cpuprofile written (daemon exit ${code})`);
      continue;
    }
    const summary = analyzeProfile(join(profDir, file), label, 30);
    out.push(summary);
    const cats = summary.categories.slice(0, 6).map((c) => `${c.fn} ${c.pct.toFixed(0)}%`).join(', ');
    log(`  ${label}: ${summary.busyMs.toFixed(0)} ms busy [${((Date.now() - t0) / 1000).toFixed(1)} s]: ${cats}`);
  }
  writeFileSync(join(outDir, 'summary.txt'), `${out.map(renderProfile).join('\n\n')}\n`);
  log(`  profiles and summary: ${outDir}`);
  return out;
}
