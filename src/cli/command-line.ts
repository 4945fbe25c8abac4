import { Command, CommanderError, Option } from 'commander';
import type { LogFormat, LogLevel, LogSink } from '../log/logger.js';
import { parseOctalMode, POD_DEFAULTS, SettingsError } from '../proxy/pod-settings.js';
import { addHostCommands } from './host-commands.js';
import { logLevelOption, logOutputOptions, nonNegative, octalMode, positiveInt, seconds } from './options.js';
import { normalizeGoFlags, UsageError } from './go-flags.js';
import { parseSocketArg } from './socket-arg.js';
import { versionLine } from './version.js';

export {
  DEFAULT_CONTROL_SOCKET,
  DEFAULT_STATE_FILE,
  type DaemonOptions,
  type HostOptions,
  type ParsedCommand,
  type PodCommand,
} from './parsed-command.js';
import type { ParsedCommand } from './parsed-command.js';

const BOOLEAN_FLAGS = new Set(['debug', 'version', 'help', 'stay', 'host', 'no-wait']);
const VALUE_FLAGS = new Set([
  'listen-socket', 'mux-socket', 'mux-device', 'baud', 'agent-logs-socket', 'sandbox', 'log', 'log-format',
  'log-sink', 'retry-timeout', 'listen-mode', 'drain-timeout', 'agent-log-rate', 'heartbeat',
  'listen', 'console', 'dir', 'exec-path', 'control-socket', 'state-file', 'pod-log-rate', 'pod-slice', 'pod-conn-rate', 'pod-threads', 'pod-thread-nice', 'pod-rebalance',
]);

/** Where the one program of this process reports to, reset before every parse. */
const parse = { result: null as ParsedCommand | null, out: '', err: '' };
let built: Command | null = null;

/**
 * The command-line program, built once: the host reads a pod's command line at every pod start
 * (commander 13+ restores each command's state before it parses again).
 */
function program(): Command {
  if (built) return built;
  built = buildProgram((r) => (parse.result = r));
  const configure = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({ writeOut: (s) => (parse.out += s), writeErr: (s) => (parse.err += s) });
    cmd.options.forEach(fixedNames);
    cmd.commands.forEach(configure);
  };
  configure(built);
  return built;
}

/**
 * An option's names, computed once: commander derives them from its flags (a regex and a camel-case
 * conversion) at every look-up, many times per parse, a quarter of what a parse cost. The flags do
 * not change once the program is built.
 */
function fixedNames(option: Option): void {
  const name = option.name();
  const attribute = option.attributeName();
  option.name = () => name;
  option.attributeName = () => attribute;
}

/** Builds the program ahead of the first parse (scripts/snapshot.mjs: it is then part of the snapshot). */
export function prepareCommandLine(): void {
  program();
}

/** Parses argv (without node and script) into what to do; never exits the process. */
export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const p = program();
  parse.result = null;
  parse.out = '';
  parse.err = '';
  try {
    p.parse(normalizeGoFlags(argv, { values: VALUE_FLAGS, booleans: BOOLEAN_FLAGS }), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      const code = e.exitCode === 0 ? 0 : 2;
      return { kind: 'exit', code, stdout: parse.out, stderr: parse.err };
    }
    if (e instanceof UsageError || e instanceof SettingsError) {
      return { kind: 'exit', code: 2, stderr: `kata-proxy: ${e.message}\n${e.message.startsWith('missing') ? p.helpInformation() : ''}` };
    }
    throw e;
  }
  return parse.result ?? { kind: 'exit', code: 2, stderr: p.helpInformation() };
}

function buildProgram(done: (r: ParsedCommand) => void): Command {
  const program = new Command('kata-proxy')
    .description(
      'Multiplexes host connections to the Kata guest agent over one serial channel with Yamux.\n' +
        'Go-style single-dash flags (-listen-socket unix:///path, -log=debug) are accepted as well.',
    )
    .usage('-listen-socket unix:///run/vc/sbs/ID/proxy.sock -mux-socket /run/vc/vm/ID/kata.sock [options]')
    .helpOption('--help', 'show this help')
    .enablePositionalOptions() // a subcommand's flags are its own, even where the daemon has the same name
    .option('--listen-socket <uri>', 'socket the shims and the runtime connect to (path or unix:// URI)')
    .option('--mux-socket <uri>', "guest channel: QEMU's agent.channel.0 chardev socket")
    .option('--mux-device <tty>', 'guest channel on a serial device instead of a socket (e.g. /dev/ttyS1)')
    .addOption(new Option('--baud <rate>', 'baud rate of --mux-device').default(POD_DEFAULTS.baud).argParser(positiveInt))
    .option('--agent-logs-socket <uri>', "guest console socket whose lines are logged with source=agent")
    .option('--sandbox <id>', 'sandbox id, added to every log record')
    .addOption(logLevelOption().default('warn'))
    .addOption(logOutputOptions()[0]!)
    .addOption(logOutputOptions()[1]!)
    .option('--debug', 'debug mode: log level debug unless -log says otherwise')
    .addOption(new Option('--retry-timeout <seconds>', 'how long to retry reaching the guest sockets').default(POD_DEFAULTS.retryTimeout).argParser(seconds))
    .addOption(new Option('--listen-mode <octal>', 'file mode of the listen socket').default(parseOctalMode('listenMode', POD_DEFAULTS.listenMode), POD_DEFAULTS.listenMode).argParser(octalMode))
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGTERM, how long live streams may finish').default(POD_DEFAULTS.drainTimeout).argParser(seconds))
    .addOption(new Option('--agent-log-rate <lines>', 'relay at most this many console lines per second (0: all)').default(POD_DEFAULTS.agentLogRate).argParser(nonNegative))
    .addOption(new Option('--heartbeat <seconds>', 'interval of the keep-moving ping to the guest (0: off)').default(POD_DEFAULTS.heartbeat).argParser(seconds))
    .option('--control-socket <path>', 'serve read-only stats (GET /pods, /metrics) over HTTP on this Unix socket')
    .option('--version', 'print the version and exit')
    .showHelpAfterError(false)
    .action((opts: Record<string, unknown>, cmd: Command) => done(daemonCommand(opts, cmd)));

  program
    .command('demo')
    .description('run the proxy against a built-in simulated guest with a short workload, then summarize')
    .option('--stay', 'keep running afterwards and print the socket to try by hand')
    .action((opts: { stay?: boolean }) => done({ kind: 'demo', stay: Boolean(opts.stay) }));
  program
    .command('simulate-guest')
    .description('serve a simulated Kata guest (yamux server) on a Unix socket, for testing tooling')
    .requiredOption('--listen <path>', 'mux socket to serve (what QEMU calls kata.sock)')
    .option('--console <path>', 'also serve a console socket with agent-like log lines')
    .action((opts: { listen: string; console?: string }) =>
      done({ kind: 'simulate-guest', listen: parseSocketArg('listen', opts.listen), ...(opts.console ? { console: parseSocketArg('console', opts.console) } : {}) }),
    );
  program
    .command('install-units')
    .description('install the systemd units kata-proxy@.service and kata-proxy@.socket (with --host: the host mode units)')
    .option('--dir <dir>', 'unit directory', '/etc/systemd/system')
    .option('--exec-path <path>', 'kata-proxy executable the units start (default: this one)')
    .option('--host', 'install kata-proxy-host.service, kata-proxy-host.socket and kata-proxy-pod@.service instead')
    .action((opts: { dir: string; execPath?: string; host?: boolean }) =>
      done({ kind: 'install-units', dir: opts.dir, host: opts.host === true, ...(opts.execPath ? { execPath: opts.execPath } : {}) }),
    );
  addHostCommands(program, done);
  return program;
}

function daemonCommand(opts: Record<string, unknown>, cmd: Command): ParsedCommand {
  if (opts.version) return { kind: 'exit', code: 0, stdout: `${versionLine()}\n` };
  if (cmd.args.length > 0) throw new UsageError(`unexpected argument "${cmd.args[0]}"`);
  if (opts.listenSocket === undefined) throw new UsageError('missing required flag -listen-socket');
  if (opts.muxSocket === undefined && opts.muxDevice === undefined) {
    throw new UsageError('missing required flag -mux-socket (or -mux-device)');
  }
  if (opts.muxSocket !== undefined && opts.muxDevice !== undefined) {
    throw new UsageError('-mux-socket and -mux-device exclude each other');
  }
  const source = cmd.getOptionValueSource('log');
  const level = (opts.log === 'warning' ? 'warn' : opts.log) as LogLevel;
  return {
    kind: 'daemon',
    options: {
      listenSocket: parseSocketArg('listen-socket', String(opts.listenSocket)),
      ...(opts.muxSocket !== undefined ? { muxSocket: parseSocketArg('mux-socket', String(opts.muxSocket)) } : {}),
      ...(opts.muxDevice !== undefined ? { muxDevice: nonEmpty('mux-device', String(opts.muxDevice)) } : {}),
      baud: opts.baud as number,
      ...(opts.agentLogsSocket !== undefined ? { agentLogsSocket: parseSocketArg('agent-logs-socket', String(opts.agentLogsSocket)) } : {}),
      ...(opts.sandbox ? { sandbox: String(opts.sandbox) } : {}),
      logLevel: opts.debug && source === 'default' ? 'debug' : level,
      logFormat: opts.logFormat as LogFormat,
      logSink: opts.logSink as LogSink,
      debug: Boolean(opts.debug),
      retryTimeoutMs: (opts.retryTimeout as number) * 1000,
      listenMode: opts.listenMode as number,
      drainTimeoutMs: (opts.drainTimeout as number) * 1000,
      agentLogRate: opts.agentLogRate as number,
      heartbeatMs: (opts.heartbeat as number) * 1000,
      ...(opts.controlSocket !== undefined ? { controlSocket: parseSocketArg('control-socket', String(opts.controlSocket)) } : {}),
    },
  };
}

function nonEmpty(flag: string, value: string): string {
  if (value.trim() === '') throw new UsageError(`-${flag}: empty value`);
  return value;
}

