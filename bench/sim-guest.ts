// The built-in simulated guest (src/sim/guest.ts) as a child process, so it never shares a CPU
// thread with the load generator or the proxy; one guest per mux socket path given:
//   node dist/bench/sim-guest.js <mux socket path> [more paths...]
// Prints {"event":"ready"} once all are listening; exits on SIGTERM or when stdin closes.
import { SimulatedGuest } from '../src/sim/guest.js';
import { readyUntilTold } from './child-lifecycle.js';

const muxSockets = process.argv.slice(2);
if (muxSockets.length === 0) {
  process.stderr.write('usage: sim-guest.js <mux socket path> [more paths...]\n');
  process.exit(2);
}
const guests = muxSockets.map((muxSocket) => new SimulatedGuest({ muxSocket }));
await Promise.all(guests.map((g) => g.start()));
readyUntilTold(() => Promise.all(guests.map((g) => g.stop())));
