import { createLoggers } from '../log/logger.js';
import { parseCommandLine, prepareCommandLine } from './command-line.js';

/**
 * Runs the per-pod daemon's first steps once on throwaway input while the V8 startup snapshot is
 * built (scripts/snapshot.mjs): the snapshot then holds the command-line program and the code
 * of parsing and logging already compiled, which a pod's proxy would otherwise compile at every
 * start. Nothing of it is kept: no handle, no timer, nothing written.
 */
export function prepareStart(): void {
  prepareCommandLine();
  const argv = ['-listen-socket', 'unix:///run/vc/sbs/warm-up/proxy.sock', '-mux-socket', '/run/vc/vm/warm-up/kata.sock'];
  parseCommandLine([...argv, '-sandbox', 'warm-up', '-log', 'debug', '-agent-logs-socket', '/run/vc/vm/warm-up/console.sock']);
  for (const format of ['logfmt', 'json'] as const) {
    const loggers = createLoggers({ level: 'debug', format, sink: 'stderr', sandbox: 'warm-up', stderr: { write: () => {} } });
    loggers.proxy.info({ 'listen-socket': argv[1], count: 1, debug: false }, 'warm-up');
    loggers.proxy.child({ component: 'yamux' }).debug('warm-up');
    loggers.agent.info('time="warm-up" level=debug msg="a guest console line"');
  }
}
