import { SimulatedGuest } from './guest.js';

/** `kata-proxy simulate-guest`: serves the simulated guest until SIGTERM/SIGINT. */
export async function serveSimulatedGuest(muxSocket: string, consoleSocket?: string): Promise<number> {
  const guest = new SimulatedGuest({ muxSocket, ...(consoleSocket ? { consoleSocket } : {}), consoleIntervalMs: 5000 });
  await guest.start();
  process.stdout.write(`simulated guest listening on ${muxSocket}${consoleSocket ? `, console on ${consoleSocket}` : ''}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await guest.stop();
  return 0;
}
