import path from 'node:path';
import type { Logger } from 'pino';
import { hostedCommand, HOSTED_ENV } from '../cli/hosted-command.js';
import { createLoggers } from '../log/logger.js';
import { packageRoot } from '../package-root.js';
import { controlRequest } from '../host/control-client.js';

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
 * Registers the pod of a per-pod command line (the Kata runtime's argv) with the host: the same
 * request the native handle sends, `POST /pods?pid=PID` with the argv and the environment it
 * depends on; the host reads them with the daemon's option code and answers with the pod
 * (`Location: /pods/ID`) once its listen socket exists, which is all the runtime needs before it
 * dials it. The command line is read here too, first: help, version, usage errors and the
 * fallback need no host.
 */
/** `handlePid`: the process that will hold the pod (the native handle, or this Node process). */
export async function register(argv: readonly string[], env: NodeJS.ProcessEnv, handlePid: number): Promise<Registration> {
  const command = hostedCommand(argv, env);
  if (command.kind === 'exit') return command;
  if (command.kind === 'other') return { kind: 'exec', argv: perPodDaemonArgv(command.argv) };
  const o = command.options;
  const loggers = createLoggers({ level: o.logLevel, format: o.logFormat, sink: o.logSink, sandbox: command.id });
  try {
    return await post(loggers.proxy, command.controlSocket, handlePid, { argv: [...argv], env: hostedEnv(env) }, () =>
      command.fallback ? { kind: 'exec', argv: perPodDaemonArgv(command.argv) } : null,
    );
  } finally {
    await loggers.writer.flush();
  }
}

function hostedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(HOSTED_ENV.flatMap((k) => (env[k] !== undefined ? [[k, env[k]]] : [])));
}

async function post(
  log: Logger,
  controlSocket: string,
  handlePid: number,
  commandLine: { argv: string[]; env: Record<string, string> },
  fallback: () => Registration | null,
): Promise<Registration> {
  let answer;
  try {
    // Named at once: a handle that dies before it attaches takes the pod with it.
    answer = await controlRequest(controlSocket, 'POST', `/pods?pid=${handlePid}`, commandLine, HOST_ANSWER_TIMEOUT_MS);
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
  const body = answer.body as { error?: string; code?: string; usage?: string } | string;
  const detail = typeof body === 'object' && body !== null ? body : { error: String(body) };
  // A host of another version may read the command line otherwise: its usage error is the answer.
  if (answer.status === 400 && detail.code === 'usage') return { kind: 'exit', code: 2, stderr: detail.usage ?? `${detail.error}\n` };
  const podPath = answer.headers.location;
  if ((answer.status !== 200 && answer.status !== 201) || !podPath) {
    log.error({ controlSocket, status: answer.status, err: detail.error, code: detail.code }, 'the kata-proxy host refused the pod');
    return { kind: 'exit', code: 1 };
  }
  return { kind: 'attach', controlSocket, podPath };
}
