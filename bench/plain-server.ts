// Baseline server: the guest services of src/sim/services.ts on a plain Unix socket, no yamux and
// no proxy (the physical limit of this machine for the same work). Run as a child process:
//   node dist/bench/plain-server.js <socket path>
// Prints {"event":"ready"} once listening; exits on SIGTERM or when stdin closes.
import { rmSync } from 'node:fs';
import net from 'node:net';
import { closeServer, readyUntilTold } from './child-lifecycle.js';
import { serveStream } from '../src/sim/services.js';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: plain-server.js <socket path>\n');
  process.exit(2);
}
rmSync(path, { force: true });
const server = net.createServer({ allowHalfOpen: true }, (socket) => serveStream(socket));
server.listen(path, () => readyUntilTold(() => closeServer(server), 200));
