import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import type { LogFormat, LogLevel, LogSink } from '../log/logger.js';
import { formatMode, parsePodId, podConfigFromJson } from '../proxy/pod-settings.js';
import { DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_FILE, type ParsedCommand } from './parsed-command.js';
import { logLevelOption, logOutputOptions, niceIncrement, nonNegative, octalMode, positiveInt, seconds } from './options.js';
import { parseSocketArg } from './socket-arg.js';

/**
 * A guest flooding its console costs the one process every pod shares a record per line: in host
 * mode lines past this rate are only counted (journald's own default is 10,000 per 30 s).
 */
const DEFAULT_POD_LOG_RATE = 1000;

/** Half a millisecond of a pod's reading per loop turn: about what a neighbour's 64-byte round trip costs. */
const DEFAULT_POD_SLICE_MS = 0.5;
/**
 * New connections per second a pod serves at most: Kata's runtime and shims open a few per
 * container. Measured with a guest resetting every stream and 8 clients reconnecting: the host
 * spent 42 % of a core on that pod unlimited, 21 % at 500/s, 12 % at 100/s.
 */
const DEFAULT_POD_CONN_RATE = 100;
/**
 * Off: on two shared cores a busy pod thread at nice 10 (a tenth of a nice-0 thread's share of a
 * contended core) spared a bulk pod's neighbours 7–21 % of their p99 in one run and cost them 27 %
 * in another, and costs a flooding pod's 40–80 % (BENCHMARKS.md, "Neighbours").
 */
const DEFAULT_POD_THREAD_NICE = 0;

/**
 * One pod thread per core, four at most: each costs ~10 MiB whatever its pods, and beyond the
 * cores more threads only take turns.
 */
function defaultPodThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** `kata-proxy host` and the `kata-proxy pod add|rm|ls|show` client. */
export function addHostCommands(program: Command, done: (r: ParsedCommand) => void): void {
  const host = program
    .command('host')
    .description('serve many pods in this one process, managed over an HTTP control socket')
    .option('--control-socket <path>', 'control socket (mode 0600), unless systemd passes one', DEFAULT_CONTROL_SOCKET)
    .option('--state-file <path>', 'the pod table, replaced on every change and re-read at start', DEFAULT_STATE_FILE)
    .addOption(
      new Option('--pod-log-rate <lines>', "console lines per second each pod relays at most, over a burst of 10 s worth (0: each pod's own -agent-log-rate)")
        .default(DEFAULT_POD_LOG_RATE)
        .argParser(nonNegative),
    )
    .addOption(
      new Option('--pod-slice <ms>', "each pod's share of an event-loop turn for its reads (0: unpaced)").default(DEFAULT_POD_SLICE_MS).argParser(nonNegative),
    )
    .addOption(
      new Option('--pod-threads <n>', 'threads that run the pods (a busy pod delays only the pods of its thread); 0: every pod on the main thread')
        .default(defaultPodThreads())
        .argParser(nonNegative),
    )
    .addOption(
      new Option('--pod-thread-nice <n>', "how much lower (nice) a pod thread's CPU priority is while its loop is over half busy, so that a busy pod waits when the cores are contended, not its neighbours (e.g. 10; 0: never; needs root)")
        .default(DEFAULT_POD_THREAD_NICE)
        .argParser(niceIncrement),
    )
    .addOption(
      new Option('--pod-rebalance <ms>', 'how often to compare the pod threads and move a quiet pod off a thread a busy pod keeps hot (0: never)')
        .default(0)
        .argParser(nonNegative),
    )
    .addOption(
      new Option('--pod-conn-rate <n>', 'new connections per second each pod serves at most, over a burst of 2 s worth; the rest wait their turn (0: unlimited)')
        .default(DEFAULT_POD_CONN_RATE)
        .argParser(nonNegative),
    )
    .addOption(logLevelOption().default('warn'));
  for (const o of logOutputOptions()) host.addOption(o);
  host.action((opts: Record<string, unknown>) =>
    done({
      kind: 'host',
      options: {
        controlSocket: parseSocketArg('control-socket', String(opts.controlSocket)),
        stateFile: String(opts.stateFile),
        logLevel: (opts.log === 'warning' ? 'warn' : opts.log) as LogLevel,
        logFormat: opts.logFormat as LogFormat,
        logSink: opts.logSink as LogSink,
        podLogRate: opts.podLogRate as number,
        podSliceMs: opts.podSlice as number,
        podConnRate: opts.podConnRate as number,
        podThreads: Math.floor(opts.podThreads as number),
        podThreadNice: opts.podThreadNice as number,
        podRebalanceMs: opts.podRebalance as number,
      },
    }),
  );

  host
    .command('upgrade')
    .description('hand every pod of the running host, live connections included, to the version now installed (systemctl reload)')
    .option('--control-socket <path>', `the host's control socket (default: $KATA_PROXY_CONTROL_SOCKET or ${DEFAULT_CONTROL_SOCKET})`)
    .action((opts: Record<string, unknown>) =>
      done({
        kind: 'pod',
        command: { action: 'upgrade', ...(opts.controlSocket === undefined ? {} : { controlSocket: parseSocketArg('control-socket', String(opts.controlSocket)) }) },
      }),
    );

  const pod = program.command('pod').description('add, remove and list the pods of a running `kata-proxy host`');
  const controlSocket = (opts: Record<string, unknown>) =>
    opts.controlSocket === undefined ? {} : { controlSocket: parseSocketArg('control-socket', String(opts.controlSocket)) };
  const withControl = (cmd: Command) =>
    cmd.option('--control-socket <path>', `the host's control socket (default: $KATA_PROXY_CONTROL_SOCKET or ${DEFAULT_CONTROL_SOCKET})`);

  withControl(
    pod
      .command('add <id>')
      .description("add a pod (the per-pod daemon's flags) and wait until its session is up")
      .option('--listen-socket <uri>', 'socket the shims and the runtime connect to')
      .option('--mux-socket <uri>', "guest channel: QEMU's agent.channel.0 chardev socket")
      .option('--mux-device <tty>', 'guest channel on a serial device instead')
      .addOption(new Option('--baud <rate>', 'baud rate of --mux-device').argParser(positiveInt))
      .option('--agent-logs-socket <uri>', 'guest console socket to relay into the log')
      .addOption(logLevelOption().default(undefined, "the host's"))
      .addOption(new Option('--retry-timeout <seconds>', 'how long to retry reaching the guest sockets').argParser(seconds))
      .addOption(new Option('--listen-mode <octal>', 'file mode of the listen socket').argParser(octalMode))
      .addOption(new Option('--drain-timeout <seconds>', 'on removal, how long live streams may finish').argParser(seconds))
      .addOption(new Option('--agent-log-rate <lines>', 'console lines per second at most (0: all)').argParser(nonNegative))
      .addOption(new Option('--heartbeat <seconds>', 'interval of the keep-moving ping (0: off)').argParser(seconds))
      .option('--no-wait', 'answer once the listen socket exists, without waiting for the guest'),
  ).action((id: string, opts: Record<string, unknown>) => {
    const body: Record<string, unknown> = {};
    const socket = (flag: string, key: string) => {
      if (opts[key] !== undefined) body[key] = parseSocketArg(flag, String(opts[key]));
    };
    socket('listen-socket', 'listenSocket');
    socket('mux-socket', 'muxSocket');
    socket('agent-logs-socket', 'agentLogsSocket');
    if (opts.muxDevice !== undefined) body.muxDevice = opts.muxDevice;
    if (opts.log !== undefined) body.logLevel = opts.log === 'warning' ? 'warn' : opts.log;
    if (opts.listenMode !== undefined) body.listenMode = formatMode(opts.listenMode as number);
    for (const key of ['baud', 'retryTimeout', 'drainTimeout', 'agentLogRate', 'heartbeat']) {
      if (opts[key] !== undefined) body[key] = opts[key];
    }
    podConfigFromJson(body); // the host checks it again; usage errors are found here first
    done({ kind: 'pod', command: { action: 'add', id: parsePodId(id), body, wait: opts.wait !== false, ...controlSocket(opts) } });
  });
  withControl(pod.command('rm <id>').description('remove a pod: the orderly stop of its per-pod daemon')).action(
    (id: string, opts: Record<string, unknown>) => done({ kind: 'pod', command: { action: 'rm', id: parsePodId(id), ...controlSocket(opts) } }),
  );
  withControl(pod.command('show <id>').description("one pod's state, counters, settings and streams, as JSON")).action(
    (id: string, opts: Record<string, unknown>) => done({ kind: 'pod', command: { action: 'show', id: parsePodId(id), ...controlSocket(opts) } }),
  );
  withControl(pod.command('ls').description('every pod as a table')).action((opts: Record<string, unknown>) =>
    done({ kind: 'pod', command: { action: 'ls', ...controlSocket(opts) } }),
  );
}
