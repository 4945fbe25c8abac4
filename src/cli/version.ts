import { readFileSync } from 'node:fs';

/** The package version (semver), read from package.json next to dist/. */
export function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** `kata-runtime kata-env` parses the last token of this line as semver. */
export function versionLine(): string {
  return `kata-proxy version ${packageVersion()}`;
}
