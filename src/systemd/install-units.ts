import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

export const UNIT_FILES = ['kata-proxy@.service', 'kata-proxy@.socket'] as const;
export const HOST_UNIT_FILES = ['kata-proxy-host.service', 'kata-proxy-host.socket', 'kata-proxy-pod@.service'] as const;
/** The executable the unit files name, replaced by this installation's. */
const DEFAULT_EXEC_LINE = /^(Exec(?:Start|Stop|Reload))=\/usr\/local\/bin\/kata-proxy /gm;

/** This installation's launcher (bin/kata-proxy), the default ExecStart. */
export function defaultExecPath(): string {
  return path.join(packageRoot(), 'bin', 'kata-proxy');
}

/**
 * Writes the per-pod units (or, with `host`, the host mode units) into `dir` with every
 * ExecStart/ExecStop pointing at `execPath`; returns the written paths.
 */
export function installUnits(options: { dir?: string; execPath?: string; host?: boolean } = {}): string[] {
  const dir = options.dir ?? '/etc/systemd/system';
  const execPath = path.resolve(options.execPath ?? defaultExecPath());
  mkdirSync(dir, { recursive: true });
  return (options.host ? HOST_UNIT_FILES : UNIT_FILES).map((name) => {
    const text = readFileSync(path.join(packageRoot(), 'systemd', name), 'utf8').replace(DEFAULT_EXEC_LINE, `$1=${execPath} `);
    const target = path.join(dir, name);
    writeFileSync(target, text, { mode: 0o644 });
    return target;
  });
}

/** `kata-proxy install-units`: installs and says what to do next. */
export async function installUnitsCommand(dir: string, execPath?: string, host = false): Promise<number> {
  try {
    const written = installUnits({ dir, host, ...(execPath ? { execPath } : {}) });
    const next = host
      ? 'systemctl daemon-reload && systemctl enable --now kata-proxy-host.socket && systemctl start kata-proxy-pod@<sandbox-id>'
      : 'systemctl daemon-reload && systemctl start kata-proxy@<sandbox-id>.socket';
    process.stdout.write(`${written.map((p) => `installed ${p}`).join('\n')}\nnext: ${next}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`kata-proxy: cannot install units: ${(err as Error).message}\n`);
    return 1;
  }
}
