import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { F, T, encodeFrame } from '../helpers/frames.js';
import { describeScenario, scenarioArb, type Role, type Scenario } from '../helpers/hostile-frames.js';
import { escapedErrors, runScenario } from '../helpers/hostile-session.js';

// A hostile peer against a real Session over a real Unix socket: random and mutated frame
// sequences, cut at random points, while our side opens, writes, ends and resets streams.
// Fixed seeds keep this run short and repeatable; `npm run fuzz` runs 10^6 frames.

const SEED = 0x6b70;

describe('fuzz: a hostile peer cannot crash, leak or corrupt a session', () => {
  for (const [role, seed] of [['client', SEED], ['server', SEED + 1]] as [Role, number][]) {
    it(`${role}${role === 'client' ? ' (rejectInbound, as kata-proxy)' : ''}`, async () => {
      const ends = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(scenarioArb({ role, maxItems: 40 }), async (scenario) => {
          const outcome = await runScenario(scenario);
          ends.set(outcome.end, (ends.get(outcome.end) ?? 0) + 1);
          if (outcome.violations.length > 0) {
            throw new Error(`${outcome.violations.join('\n')}\nscenario:\n${describeScenario(scenario)}`);
          }
        }),
        { seed, numRuns: 100 },
      );
      // The run reached both kinds of end: protocol errors and sessions that lived to the finale.
      expect(ends.get('ProtocolError')).toBeGreaterThan(0);
      expect([...ends.keys()].some((e) => e !== 'ProtocolError')).toBe(true);
      expect(escapedErrors()).toEqual([]);
    });
  }
});

describe('fuzz findings, replayed', () => {
  it('a stream reset by the peer before it was accepted goes quietly (was an uncaught StreamResetError)', async () => {
    const scenario: Scenario = {
      role: 'server',
      rejectInbound: false,
      acceptMode: 'accept',
      config: {
        acceptBacklog: 256,
        maxStreamWindowSize: 256 * 1024,
        maxFrameSize: 64 * 1024,
        streamOpenTimeout: 75_000,
        streamCloseTimeout: 300_000,
        connectionWriteTimeout: 10_000,
        enableKeepAlive: false,
        keepAliveInterval: 30_000,
        keepAliveCloseOnTimeout: true,
      },
      peerReads: true,
      steps: [
        { bytes: Buffer.concat([encodeFrame(T.WindowUpdate, F.SYN, 3, 0), encodeFrame(T.WindowUpdate, F.RST, 3, 0)]), frames: 2 },
        { act: { do: 'ping' } },
        { bytes: encodeFrame(T.Ping, F.ACK, 0, 0), frames: 1 },
      ],
      finale: 'hangup',
      frames: 3,
    };
    const outcome = await runScenario(scenario);
    expect(outcome.violations).toEqual([]);
    expect(outcome.end).toBe('ConnectionLostError');
  });
});
