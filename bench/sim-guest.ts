// The built-in simulated guest (src/sim/guest.ts) as a child process, so it never shares a CPU
// thread with the load generator or the proxy; one guest per mux socket path given:
//   node dist/bench/sim-guest.js [--reset-streams] <mux socket path> [more paths...]
// With --reset-streams each guest is hostile instead: it answers every stream the proxy opens
// with RST (the bench's neighbours section). Prints {"event":"ready"} once all are listening;
// exits on SIGTERM or when stdin closes.
import { rmSync } from 'node:fs';
import net from 'node:net';
import { SimulatedGuest } from '../src/sim/guest.js';
import { Session } from '../src/yamux/index.js';
import { readyUntilTold } from './child-lifecycle.js';

const resetting = process.argv[2] === '--reset-streams';
const muxSockets = process.argv.slice(resetting ? 3 : 2);
if (muxSockets.length === 0) {
  process.stderr.write('usage: sim-guest.js [--reset-streams] <mux socket path> [more paths...]\n');
  process.exit(2);
}

/** A guest whose every stream is reset as soon as it is opened. */
async function resettingGuest(path: string): Promise<{ stop(): Promise<void> }> {
  rmSync(path, { force: true });
  const sessions = new Set<Session>();
  const server = net.createServer((socket) => {
    const session = new Session(socket, { role: 'server', config: { enableKeepAlive: false }, onStream: (stream) => stream.destroy() });
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    stop: async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const guests = resetting
  ? await Promise.all(muxSockets.map(resettingGuest))
  : await Promise.all(
      muxSockets.map(async (muxSocket) => {
        const guest = new SimulatedGuest({ muxSocket });
        await guest.start();
        return guest;
      }),
    );
readyUntilTold(() => Promise.all(guests.map((g) => g.stop())));
