import { describe, expect, it } from 'vitest';
import { INITIAL_STREAM_WINDOW, type Session, type Stream } from '../../src/yamux/index.js';
import { DigestCounter, forEachSourceChunk, sourceDigest } from '../helpers/data.js';
import { sessionPair } from '../helpers/yamux-pair.js';
import { perTest } from '../helpers/per-test.js';

const { cleanups } = perTest();
const MiB = 1024 * 1024;

/** Sends n pattern bytes on a new stream of `from` and returns what `to` read from it. */
async function transfer(from: Session, to: Session, n: number, seed: number, onChunk: () => void) {
  const out = from.open();
  const accepted = to.accept();
  forEachSourceChunk(n, seed, (chunk) => out.write(chunk));
  out.end();
  const stream: Stream = await accepted;
  const digest = new DigestCounter();
  stream.on('data', (chunk: Buffer) => {
    digest.update(chunk);
    onChunk();
  });
  await new Promise((resolve) => stream.once('end', resolve));
  out.resume();
  stream.end();
  await new Promise((resolve) => out.once('close', resolve));
  return { bytes: digest.bytes, sha256: digest.hex() };
}

describe('receive-window auto-tuning', () => {
  it('grows a fast reader\'s window up to the cap, never past the session budget, and the budget returns', async () => {
    const cap = 1 * MiB;
    const budget = 1 * MiB; // room for one stream to reach the cap, plus a little
    const { client, server, close } = await sessionPair({}, { config: { autoTuneWindowCap: cap, autoTuneBudget: budget } });
    cleanups.push(close);
    let maxWindow = 0;
    let maxGrownTogether = 0;
    const overfull: string[] = [];
    const sample = () => {
      let grown = 0;
      for (const st of server.streamStats()) {
        maxWindow = Math.max(maxWindow, st.windowSize);
        grown += st.windowSize - INITIAL_STREAM_WINDOW;
        if (st.bufferedIn > st.windowSize) overfull.push(`${st.bufferedIn} > ${st.windowSize}`);
      }
      maxGrownTogether = Math.max(maxGrownTogether, grown);
    };
    const n = 16 * MiB;
    const results = await Promise.all([1, 2, 3].map((seed) => transfer(client, server, n, seed, sample)));
    results.forEach((r, i) => expect(r).toEqual({ bytes: n, sha256: sourceDigest(n, i + 1) }));
    expect(maxWindow).toBeGreaterThan(INITIAL_STREAM_WINDOW);
    expect(maxWindow).toBeLessThanOrEqual(cap);
    expect(maxGrownTogether).toBeLessThanOrEqual(budget);
    expect(overfull).toEqual([]);

    // Finished streams gave their growth back: a new stream can grow again.
    maxWindow = 0;
    await transfer(client, server, n, 4, sample);
    expect(maxWindow).toBeGreaterThan(INITIAL_STREAM_WINDOW);
  }, 30_000);

  it('is off by default: windows stay at maxStreamWindowSize', async () => {
    const { client, server, close } = await sessionPair();
    cleanups.push(close);
    let maxWindow = 0;
    const r = await transfer(client, server, 8 * MiB, 5, () => {
      for (const st of server.streamStats()) maxWindow = Math.max(maxWindow, st.windowSize);
    });
    expect(r.bytes).toBe(8 * MiB);
    expect(maxWindow).toBe(INITIAL_STREAM_WINDOW);
  });
});
