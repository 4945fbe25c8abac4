import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

export const UNIT_FILES = ['kata-proxy@.service', 'kata-proxy@.socket'] as const;
const DEFAULT_EXEC = '/usr/local/bin/kata-proxy';

/** This installation's launcher (bin/kata-proxy), the default ExecStart. */
export function defaultExecPath(): string {
  return path.join(packageRoot(), 'bin', 'kata-proxy');
}

/** Writes both units into `dir` with ExecStart pointing at `execPath`; returns the written paths. */
export function installUnits(options: { dir?: string; execPath?: string } = {}): string[] {
  const dir = options.dir ?? '/etc/systemd/system';
  const execPath = path.resolve(options.execPath ?? defaultExecPath());
  mkdirSync(dir, { recursive: true });
  return UNIT_FILES.map((name) => {
    const text = readFileSync(path.join(packageRoot(), 'systemd', name), 'utf8').replaceAll(`ExecStart=${DEFAULT_EXEC} `, `ExecStart=${execPath} `);
    const target = path.join(dir, name);
    writeFileSync(target, text, { mode: 0o644 });
    return target;
  });
}

/** `kata-proxy install-units`: installs and says what to do next. */
export async function installUnitsCommand(dir: string, execPath?: string): Promise<number> {
  try {
    const written = installUnits({ dir, ...(execPath ? { execPath } : {}) });
    process.stdout.write(
      `${written.map((p) => `installed ${p}`).join('\n')}\n` +
        'next: systemctl daemon-reload && systemctl start kata-proxy@<sandbox-id>.socket\n',
    );
    return 0;
  } catch (err) {
    process.stderr.write(`kata-proxy: cannot install units: ${(err as Error).message}\n`);
    return 1;
  }
}
