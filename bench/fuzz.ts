// `npm run fuzz [-- --seed=N --frames=N --items=N]`: the hostile-peer fuzzer of
// test/yamux/fuzz.test.ts at length (10^6 peer frames by default). Prints frames/s, peak RSS,
// heap growth and how sessions and streams ended; exits 1 on any violation (with fast-check's
// shrunk counterexample and the seed/path to replay it) or on memory growing with the run.
import fc from 'fast-check';
import { describeScenario, scenarioArb, type Scenario } from '../test/helpers/hostile-frames.js';
import { escapedErrors, runScenario } from '../test/helpers/hostile-session.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const seed = Number(args.get('seed') ?? Date.now() % 1_000_000);
const targetFrames = Number(args.get('frames') ?? 1_000_000);
const maxItems = Number(args.get('items') ?? 150);
/** Heap left after a GC may grow this much over the run (sessions are independent: a leak grows it per run). */
const HEAP_GROWTH_LIMIT = 64 * 1024 * 1024;
const RSS_LIMIT = 1024 * 1024 * 1024;
const BATCH = 100;

const gc = (globalThis as { gc?: () => void }).gc;
const MiB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

const sessionEnds = new Map<string, number>();
const streamEnds = new Map<string, number>();
let framesSent = 0;
let framesLive = 0;
let runs = 0;
let heapAfterWarmup = 0;
const started = process.hrtime.bigint();
const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;

function count(m: Map<string, number>, key: string, n = 1): void {
  m.set(key, (m.get(key) ?? 0) + n);
}

const property = fc.asyncProperty(scenarioArb({ maxItems }), async (scenario: Scenario) => {
  const outcome = await runScenario(scenario);
  runs++;
  framesSent += scenario.frames;
  framesLive += outcome.framesLive;
  count(sessionEnds, `${scenario.role} ${outcome.end}`);
  for (const [k, n] of Object.entries(outcome.streamEnds)) count(streamEnds, k, n);
  if (outcome.violations.length > 0) {
    throw new Error(`${outcome.violations.join('\n')}\nscenario:\n${describeScenario(scenario)}`);
  }
});

console.log(`fuzz: seed ${seed}, target ${targetFrames} peer frames, up to ${maxItems} items per session`);
let failed = false;
for (let batch = 0; framesSent < targetFrames; batch++) {
  const details = await fc.check(property, { seed: seed + batch, numRuns: BATCH });
  if (details.failed) {
    console.error(fc.defaultReportMessage(details));
    console.error(String(details.errorInstance));
    console.error(`replay: seed ${seed + batch} (batch ${batch} of --seed=${seed})`);
    failed = true;
    break;
  }
  if (batch === 0) {
    gc?.();
    heapAfterWarmup = process.memoryUsage().heapUsed;
  }
  if (batch % 10 === 0) {
    const rate = Math.round(framesSent / elapsed());
    console.log(`  ${framesSent} frames (${framesLive} to a live session), ${runs} sessions, ${rate} frames/s, rss ${MiB(process.memoryUsage().rss)}`);
  }
}

gc?.();
const heapGrowth = process.memoryUsage().heapUsed - heapAfterWarmup;
const peakRss = process.resourceUsage().maxRSS * 1024;
const secs = elapsed();
const table = (m: Map<string, number>): string =>
  [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `    ${k.padEnd(40)} ${n}`).join('\n');
console.log(`peer frames: ${framesSent} sent, ${framesLive} while the session lived; ${runs} sessions in ${secs.toFixed(1)} s`);
console.log(`rate: ${Math.round(framesSent / secs)} frames/s, ${(runs / secs).toFixed(0)} sessions/s`);
console.log(`memory: peak RSS ${MiB(peakRss)}, heap growth after warm-up ${gc ? MiB(heapGrowth) : 'n/a (run with --expose-gc)'}`);
console.log(`sessions ended:\n${table(sessionEnds)}`);
console.log(`our streams ended:\n${table(streamEnds)}`);

const escaped = escapedErrors();
if (escaped.length > 0) {
  console.error(`escaped exceptions:\n${escaped.join('\n')}`);
  failed = true;
}
if (gc && heapGrowth > HEAP_GROWTH_LIMIT) {
  console.error(`heap grew by ${MiB(heapGrowth)} over the run (limit ${MiB(HEAP_GROWTH_LIMIT)})`);
  failed = true;
}
if (peakRss > RSS_LIMIT) {
  console.error(`peak RSS ${MiB(peakRss)} over ${MiB(RSS_LIMIT)}`);
  failed = true;
}
console.log(failed ? 'FAIL' : 'OK: no violation');
process.exit(failed ? 1 : 0);
