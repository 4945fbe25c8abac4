// A second baseline: a bare Node relay hop (no yamux) in front of the plain server, so the cost of
// "one more process copying bytes" can be told apart from the cost of yamux. Each accepted
// connection gets its own upstream connection; bytes are piped both ways, half-close forwarded.
//   node dist/bench/relay.js <listen path> <upstream path>
// Prints {"event":"ready"} once listening; exits on SIGTERM or when stdin closes.
import { rmSync } from 'node:fs';
import net from 'node:net';
import { closeServer, readyUntilTold } from './child-lifecycle.js';

const [listen, upstream] = process.argv.slice(2);
if (!listen || !upstream) {
  process.stderr.write('usage: relay.js <listen path> <upstream path>\n');
  process.exit(2);
}
rmSync(listen, { force: true });
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const up = net.connect({ path: upstream, allowHalfOpen: true });
  client.pipe(up);
  up.pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
server.listen(listen, () => readyUntilTold(() => closeServer(server), 200));
