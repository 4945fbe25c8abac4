#!/bin/sh
# Builds dist/native/kata-proxy-handle and dist/native/malloc-trim.node (npm run build, after tsc).
# The handle is linked statically, with musl
# where musl-gcc is installed (Debian: musl-tools): ~25 KB PSS per handle in a fleet, against
# ~64 KB with glibc and ~115 KB dynamically linked (the loader's relocations and libc's data are
# private to each process). Without a C compiler bin/kata-proxy-hosted uses the Node
# handle instead, which works the same but costs several MB per pod.
cd "$(dirname "$0")/.." || exit 1
out=dist/native/kata-proxy-handle
src=native/kata-proxy-handle.c
cc=${CC:-}
if [ -z "$cc" ]; then
  for c in cc gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
mkdir -p dist/native
rm -f "$out" dist/native/malloc-trim.node
if [ -z "$cc" ]; then
  echo "kata-proxy: no C compiler (cc, gcc, clang or \$CC): host mode will hold each pod with a Node process instead of $out" >&2
  exit 0
fi

# The host's heap trimmer: a shared object loaded into node, so linked against the node's own libc
# (glibc), never musl. Without it a host keeps what busy pods fragmented of its C heap.
if ! $cc -O2 -Wall -Wextra -shared -fPIC -o dist/native/malloc-trim.node.tmp native/malloc-trim.c; then
  echo "kata-proxy: cannot build dist/native/malloc-trim.node: the host will not give back the C heap busy pods leave" >&2
else
  mv dist/native/malloc-trim.node.tmp dist/native/malloc-trim.node
fi

flags="-O2 -Wall -Wextra -s"
# musl's static startup dirties far fewer pages than glibc's: ~24 KB private per handle against ~56.
if [ -z "${CC:-}" ] && command -v musl-gcc >/dev/null 2>&1 && musl-gcc $flags -static -o "$out.tmp" "$src" 2>/dev/null; then
  mv "$out.tmp" "$out"
  exit 0
fi
if ! $cc $flags -static -o "$out.tmp" "$src" 2>/dev/null; then
  echo "kata-proxy: cannot link $out statically (no libc.a?); linking it dynamically (about twice the memory per pod)" >&2
  $cc $flags -o "$out.tmp" "$src" || exit 1
fi
mv "$out.tmp" "$out"
