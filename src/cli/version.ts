import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

/** The package version (semver). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** `kata-runtime kata-env` parses the last token of this line as semver. */
export function versionLine(): string {
  return `kata-proxy version ${packageVersion()}`;
}
