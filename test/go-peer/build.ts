// Builds the hashicorp/yamux Go peer (main.go beside this file) and the Go reference proxy
// (proxy/main.go) into bin/, offline in GOPATH mode against Debian's golang-github-hashicorp-yamux-dev.
// Shared by the tests (test/helpers/go-peer.ts) and the bench, so it is compiled with the bench
// (dist/test/go-peer/build.js).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export const REPO_ROOT = packageRoot();
const GO_PEER_BIN_DIR = join(REPO_ROOT, 'test', 'go-peer', 'bin');
const GOPATH = '/usr/share/gocode';
const HASHICORP_SRC = join(GOPATH, 'src', 'github.com', 'hashicorp', 'yamux');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO_ROOT): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { env, cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolvePromise(String(stdout));
    });
  });
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

interface GoProgram {
  /** Package directory, relative to the repository root. */
  pkg: string;
  bin: string;
}

const GO_PEER: GoProgram = { pkg: 'test/go-peer', bin: join(GO_PEER_BIN_DIR, 'yamux-peer') };
const GO_PROXY: GoProgram = { pkg: 'test/go-peer/proxy', bin: join(GO_PEER_BIN_DIR, 'go-proxy') };

function isFresh(p: GoProgram): boolean {
  return mtime(p.bin) >= mtime(join(REPO_ROOT, p.pkg, 'main.go')) && mtime(p.bin) > 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** test/go-peer/bin/yamux-peer, built if needed (see buildGo). */
export function buildGoPeer(): Promise<string> {
  return buildGo(GO_PEER);
}

/** test/go-peer/bin/go-proxy (the Go kata-proxy's data path, for the bench), built if needed. */
export function buildGoProxy(): Promise<string> {
  return buildGo(GO_PROXY);
}

/**
 * Builds the program unless its binary is newer than its main.go (offline, GOPATH mode).
 * Test files run in parallel workers, so a mkdir lock keeps it to one build. Throws if `go`
 * or the yamux sources are missing, or the build fails.
 */
async function buildGo(p: GoProgram): Promise<string> {
  if (isFresh(p)) return p.bin;
  if (!existsSync(HASHICORP_SRC)) {
    throw new Error(`hashicorp/yamux sources not found at ${HASHICORP_SRC} (apt install golang-github-hashicorp-yamux-dev)`);
  }
  mkdirSync(GO_PEER_BIN_DIR, { recursive: true });
  const lock = `${p.bin}.build-lock`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (isFresh(p)) return p.bin;
      if (Date.now() - mtime(lock) > 120_000) rmSync(lock, { recursive: true, force: true }); // stale
      if (Date.now() > deadline) throw new Error('timed out waiting for another go-peer build');
      await sleep(100);
    }
  }
  try {
    if (isFresh(p)) return p.bin;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH,
      GOFLAGS: '',
      CGO_ENABLED: '0',
      GOCACHE: join(GO_PEER_BIN_DIR, '.gocache'),
      GOTOOLCHAIN: 'local',
    };
    const tmp = `${p.bin}.${process.pid}.tmp`;
    try {
      await run('go', ['build', '-o', tmp, `./${p.pkg}`], env);
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') throw new Error('`go` is not installed (apt install golang-go)');
      throw new Error(`building ${p.pkg} failed: ${e.message}\n${e.stderr ?? ''}`);
    }
    renameSync(tmp, p.bin);
    return p.bin;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
