// The built-in simulated guest (src/sim/guest.ts) as a child process, so it never shares a CPU
// thread with the load generator or the proxy:
//   node dist/bench/sim-guest.js <mux socket path>
// Prints {"event":"ready"} once listening; exits on SIGTERM or when stdin closes.
import { SimulatedGuest } from '../src/sim/guest.js';

const muxSocket = process.argv[2];
if (!muxSocket) {
  process.stderr.write('usage: sim-guest.js <mux socket path>\n');
  process.exit(2);
}
const guest = new SimulatedGuest({ muxSocket });
await guest.start();
process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid })}\n`);
const quit = () => {
  setTimeout(() => process.exit(0), 500).unref();
  void guest.stop().then(() => process.exit(0));
};
process.on('SIGTERM', quit);
process.stdin.on('end', quit).resume();
