// The lifecycle shared by the bench's server children: announce {"event":"ready"} on stdout,
// then quit on SIGTERM or when the orchestrator's stdin pipe closes (so none outlives a crash).

export function readyUntilTold(close: () => Promise<unknown>, graceMs = 500): void {
  process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid })}\n`);
  const quit = () => {
    setTimeout(() => process.exit(0), graceMs).unref();
    void close().then(() => process.exit(0));
  };
  process.on('SIGTERM', quit);
  process.stdin.on('end', quit).resume();
}

export function closeServer(server: { close(cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
