import path from 'node:path';
import type { Logger } from 'pino';
import { parseCommandLine } from '../cli/command-line.js';
import { UsageError } from '../cli/go-flags.js';
import { createLoggers } from '../log/logger.js';
import { packageRoot } from '../package-root.js';
import { parsePodId, SettingsError, type PodConfig } from '../proxy/pod-settings.js';
import { controlRequest } from '../host/control-client.js';
import { splitHostedArgs } from './hosted-args.js';
import { podConfigOf } from '../cli/pod-config.js';

/** What kata-proxy-hosted does after registration. */
export type Registration =
  /** Nothing to hold (help, version, usage or registration error): exit with this status. */
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string }
  /** The host serves the pod: hold it with `GET podPath/attach`. */
  | { kind: 'attach'; controlSocket: string; podPath: string }
  /** Not host mode (no host and fallback allowed, or not a per-pod command line): become this. */
  | { kind: 'exec'; argv: string[] };

/** Ends an invocation that holds nothing: its output, and the exit status to leave with. */
export function finish(outcome: Extract<Registration, { kind: 'exit' }>): void {
  if (outcome.stdout) process.stdout.write(outcome.stdout);
  if (outcome.stderr) process.stderr.write(outcome.stderr);
  process.exitCode = outcome.code;
}

/** The runtime's gRPC dial gives up after 15 s; waiting longer for the host helps nobody. */
const HOST_ANSWER_TIMEOUT_MS = 15_000;
const NO_HOST = new Set(['ENOENT', 'ECONNREFUSED']);

function perPodDaemonArgv(argv: string[]): string[] {
  return [path.join(packageRoot(), 'bin', 'kata-proxy'), ...argv];
}

/**
 * Registers the pod of a per-pod command line (the Kata runtime's argv) with the host:
 * `PUT /pods/ID` (ID = -sandbox). The host answers once the pod's listen socket exists, which is
 * all the runtime needs before it dials it.
 */
/** `handlePid`: the process that will hold the pod (the native handle, or this Node process). */
export async function register(argv: readonly string[], env: NodeJS.ProcessEnv, handlePid: number): Promise<Registration> {
  let hosted;
  try {
    hosted = splitHostedArgs(argv, env);
  } catch (err) {
    if (err instanceof UsageError) return { kind: 'exit', code: 2, stderr: `kata-proxy-hosted: ${err.message}\n` };
    throw err;
  }
  const command = parseCommandLine(hosted.argv);
  if (command.kind === 'exit') return command;
  if (command.kind !== 'daemon') return { kind: 'exec', argv: perPodDaemonArgv(hosted.argv) };
  const o = command.options;
  if (!o.sandbox) return { kind: 'exit', code: 2, stderr: 'kata-proxy-hosted: missing required flag -sandbox (the pod\'s id in the host)\n' };
  try {
    parsePodId(o.sandbox);
  } catch (err) {
    if (err instanceof SettingsError) return { kind: 'exit', code: 2, stderr: `kata-proxy-hosted: -sandbox: ${err.message}\n` };
    throw err;
  }

  const loggers = createLoggers({ level: o.logLevel, format: o.logFormat, sink: o.logSink, sandbox: o.sandbox });
  try {
    return await put(loggers.proxy, hosted.controlSocket, o.sandbox, handlePid, podConfigOf(o), () =>
      hosted.fallback ? { kind: 'exec', argv: perPodDaemonArgv(hosted.argv) } : null,
    );
  } finally {
    await loggers.writer.flush();
  }
}

async function put(
  log: Logger,
  controlSocket: string,
  id: string,
  handlePid: number,
  config: PodConfig,
  fallback: () => Registration | null,
): Promise<Registration> {
  const podPath = `/pods/${encodeURIComponent(id)}`;
  let answer;
  try {
    // Named at once: a handle that dies before it attaches takes the pod with it.
    answer = await controlRequest(controlSocket, 'PUT', `${podPath}?pid=${handlePid}`, config, HOST_ANSWER_TIMEOUT_MS);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const instead = NO_HOST.has(e.code ?? '') ? fallback() : null;
    if (instead) {
      log.warn({ controlSocket, err: e.message }, 'no kata-proxy host answers; serving the pod with a per-pod daemon (fallback)');
      return instead;
    }
    log.error(
      { controlSocket, err: e.message },
      NO_HOST.has(e.code ?? '')
        ? 'no kata-proxy host answers (start kata-proxy-host, or allow -fallback to a per-pod daemon)'
        : 'cannot register the pod with the kata-proxy host',
    );
    return { kind: 'exit', code: 1 };
  }
  if (answer.status !== 200 && answer.status !== 201) {
    const body = answer.body as { error?: string; code?: string } | string;
    const detail = typeof body === 'object' && body !== null ? body : { error: String(body) };
    log.error({ controlSocket, status: answer.status, err: detail.error, code: detail.code }, 'the kata-proxy host refused the pod');
    return { kind: 'exit', code: 1 };
  }
  return { kind: 'attach', controlSocket, podPath };
}
