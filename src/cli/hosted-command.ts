import type { CommandLineVerdict } from '../host/control-server.js';
import { parsePodId, SettingsError, type PodConfig } from '../proxy/pod-settings.js';
import { parseCommandLine, type DaemonOptions } from './command-line.js';
import { UsageError } from './go-flags.js';
import { splitHostedArgs } from './hosted-args.js';
import { podConfigOf } from './pod-config.js';

/** What a kata-proxy-hosted command line asks for, decided by the daemon's own option code. */
export type HostedCommand =
  /** Help, version, or a usage error: print this and exit with `code` (2: usage). */
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string }
  /** Not a pod's command line (a subcommand such as `demo`): bin/kata-proxy runs it with `argv`. */
  | { kind: 'other'; argv: string[] }
  /** A pod for the host: its id (-sandbox), its settings, and the handle's own flags. */
  | { kind: 'pod'; id: string; config: PodConfig; options: DaemonOptions; argv: string[]; controlSocket: string; fallback: boolean };

/** The environment variables a kata-proxy-hosted command line depends on (sent to the host with it). */
export const HOSTED_ENV = ['KATA_PROXY_CONTROL_SOCKET', 'KATA_PROXY_HOSTED_FALLBACK'] as const;

/**
 * Parses the Kata runtime's argv as kata-proxy-hosted gets it. The per-pod handles (native and
 * Node) and the host, which registers a pod from the argv a native handle sends it, all decide
 * with this one function, so a command line means the same whoever reads it.
 */
export function hostedCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): HostedCommand {
  let hosted;
  try {
    hosted = splitHostedArgs(argv, env);
  } catch (err) {
    if (err instanceof UsageError) return { kind: 'exit', code: 2, stderr: `kata-proxy-hosted: ${err.message}\n` };
    throw err;
  }
  const command = parseCommandLine(hosted.argv);
  if (command.kind === 'exit') return command;
  if (command.kind !== 'daemon') return { kind: 'other', argv: hosted.argv };
  const o = command.options;
  if (!o.sandbox) return { kind: 'exit', code: 2, stderr: "kata-proxy-hosted: missing required flag -sandbox (the pod's id in the host)\n" };
  try {
    parsePodId(o.sandbox);
  } catch (err) {
    if (err instanceof SettingsError) return { kind: 'exit', code: 2, stderr: `kata-proxy-hosted: -sandbox: ${err.message}\n` };
    throw err;
  }
  return { kind: 'pod', id: o.sandbox, config: podConfigOf(o), options: o, argv: hosted.argv, controlSocket: hosted.controlSocket, fallback: hosted.fallback };
}

/** The host's reading of a command line a native handle sent (`POST /pods`). */
export function commandLineVerdict(argv: string[], env: Record<string, string>): CommandLineVerdict {
  const c = hostedCommand(argv, env);
  if (c.kind === 'pod') return { kind: 'pod', id: c.id, config: c.config };
  if (c.kind === 'exit' && c.code === 2) return { kind: 'usage', message: c.stderr ?? '' };
  return { kind: 'not-a-pod' };
}
