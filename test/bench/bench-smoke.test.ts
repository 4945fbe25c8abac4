// The bench is an instrument, not a test of speed: this only checks that `npm run bench` still
// runs end to end and that every path it measures carried every byte (its warm-up round
// sha256-checks each one). No timing is asserted.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findGoPeer, REPO_ROOT } from '../helpers/go-peer.js';
import { createTempDir } from '../helpers/tmp.js';
import type { HostFigures } from '../../bench/host.js';

interface ScenarioResult {
  dir: string;
  streams: number;
  mibps: Record<string, { median: number; n: number }>;
  cpuSecondsPerGiB: Record<string, Record<string, number>>;
  errors: Record<string, string[]>;
}

const goPeer = await findGoPeer();

describe.skipIf(!goPeer)('bench (quick run)', () => {
  it('measures every path with no transfer errors and writes its results', async () => {
    const dir = createTempDir('bench');
    const out = dir.file('results.json');
    const args = ['--quick', '--only=podstart,throughput,latency,floods,pods,host', '--start-runs=2', '--streams=1,64', `--out=${out}`];
    await new Promise<void>((resolve, reject) => {
      execFile('node', [join(REPO_ROOT, 'dist', 'bench', 'run.js'), ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(),
      );
    });
    const results = JSON.parse(readFileSync(out, 'utf8')) as {
      throughput: ScenarioResult[];
      latency: { storm: Record<string, { served: number; attempted: number; refused: number }> };
      pods: { errors: string[]; steps: { pods: number }[]; perPod: { uss: number } };
      floods: { scenarios: { name: string; errors: string[]; flooded: { p99: { n: number } } }[]; droppedLines: number };
      podStart: { ms: Record<string, { median: number; n: number }>; unanswered: Record<string, number>; errors: string[] };
      host: HostFigures;
      targets: unknown[];
    };
    expect(results.throughput.map((s) => `${s.dir}x${s.streams}`)).toEqual(['upx1', 'downx1', 'echox1', 'upx64', 'downx64', 'echox64']);
    for (const scenario of results.throughput) {
      for (const path of ['plain', 'relay', 'engine', 'proxy', 'go-proxy', 'proxy-sim', 'go-go']) {
        expect(scenario.errors[path], `${scenario.dir}x${scenario.streams} ${path}`).toEqual([]);
        expect(scenario.mibps[path]!.n).toBe(2);
        expect(scenario.mibps[path]!.median).toBeGreaterThan(0);
      }
      for (const path of ['proxy', 'go-proxy']) expect(scenario.cpuSecondsPerGiB[path]!.proxy).toBeGreaterThanOrEqual(0);
    }
    expect(results.podStart.errors).toEqual([]);
    for (const subject of ['node', 'proxy', 'go-proxy']) {
      expect(results.podStart.ms[subject]!.n, subject).toBe(2);
      expect(results.podStart.ms[subject]!.median, subject).toBeGreaterThan(0);
    }
    for (const [path, storm] of Object.entries(results.latency.storm)) {
      expect({ path, served: storm.served, refused: storm.refused }).toEqual({ path, served: storm.attempted, refused: 0 });
    }
    expect(results.floods.scenarios.map((f) => ({ name: f.name, errors: f.errors, n: f.flooded.p99.n }))).toEqual([
      { name: 'console flood, 200-byte lines', errors: [], n: 1 },
      { name: 'console flood, 20 MB lines', errors: [], n: 1 },
    ]);
    expect(results.floods.droppedLines).toBeGreaterThan(0);
    expect(results.pods.errors).toEqual([]);
    expect(results.pods.steps.map((s) => s.pods)).toEqual([21, 41]);
    expect(results.pods.perPod.uss).toBeGreaterThan(0);
    expect(results.host.errors).toEqual([]);
    expect(results.host.memory.map((m) => m.pods)).toEqual([1, 10, 30]);
    expect(results.host.fleet.daemonsPss).toBeGreaterThan(results.host.fleet.hostPss);
    for (const s of [results.host.aggregate.hostMiBps, results.host.aggregate.daemonsMiBps, results.host.restart.allServingMs, results.host.podStart.podAddMs, results.host.podStart.daemonMs]) {
      expect(s.median).toBeGreaterThan(0);
    }
    expect(results.targets.length).toBeGreaterThan(0);
    dir.cleanup();
  }, 180_000);
});
