import { DEFAULT_CONTROL_SOCKET } from './command-line.js';
import { UsageError } from './go-flags.js';

export interface HostedArgs {
  /** The per-pod argv without the flags below: what bin/kata-proxy itself accepts. */
  argv: string[];
  controlSocket: string;
  /** With no host answering, serve the pod with a per-pod daemon instead of failing. */
  fallback: boolean;
}

const TRUE = /^(1|t|true|TRUE|True)$/;
const BOOL = /^(1|t|true|TRUE|True|0|f|false|FALSE|False)$/;

/**
 * Takes out the flags only kata-proxy-hosted knows, Go style (`-control-socket PATH`,
 * `--control-socket=PATH`, `-fallback`, `-fallback=false`); the environment variables
 * KATA_PROXY_CONTROL_SOCKET and KATA_PROXY_HOSTED_FALLBACK=1 apply when the flags are absent.
 */
export function splitHostedArgs(argv: readonly string[], env: NodeJS.ProcessEnv): HostedArgs {
  const rest: string[] = [];
  let controlSocket: string | undefined;
  let fallback: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const m = /^--?(control-socket|fallback)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      rest.push(arg);
    } else if (m[1] === 'fallback') {
      if (m[2] !== undefined && !BOOL.test(m[2])) throw new UsageError(`invalid boolean value "${m[2]}" for flag -fallback`);
      fallback = m[2] === undefined || TRUE.test(m[2]);
    } else {
      const value = m[2] ?? argv[++i];
      if (value === undefined || value === '') throw new UsageError('flag needs an argument: -control-socket');
      controlSocket = value;
    }
  }
  return {
    argv: rest,
    controlSocket: controlSocket ?? (env.KATA_PROXY_CONTROL_SOCKET || DEFAULT_CONTROL_SOCKET),
    fallback: fallback ?? env.KATA_PROXY_HOSTED_FALLBACK === '1',
  };
}
