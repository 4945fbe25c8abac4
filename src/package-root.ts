import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

/** The directory holding package.json, whether this runs from src/ (tests) or dist/src/. */
export function packageRoot(): string {
  if (cached) return cached;
  for (let url = new URL('./', import.meta.url); url.pathname !== '/'; url = new URL('../', url)) {
    if (existsSync(new URL('package.json', url))) return (cached = fileURLToPath(url));
  }
  throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
}
