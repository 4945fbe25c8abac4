import { existsSync, readFileSync } from 'node:fs';

/** The package version (semver) from the nearest package.json (found from src/ or dist/src/). */
export function packageVersion(): string {
  for (let url = new URL('./', import.meta.url); url.pathname !== '/'; url = new URL('../', url)) {
    const candidate = new URL('package.json', url);
    if (existsSync(candidate)) return (JSON.parse(readFileSync(candidate, 'utf8')) as { version: string }).version;
  }
  throw new Error('package.json not found');
}

/** `kata-runtime kata-env` parses the last token of this line as semver. */
export function versionLine(): string {
  return `kata-proxy version ${packageVersion()}`;
}
