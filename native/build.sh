#!/bin/sh
# Builds dist/native/kata-proxy-handle and dist/native/host-addon.node (npm run build, after tsc;
# the npm package's install step), and puts bin/kata-proxy-hosted in place: a copy of the handle,
# which the runtime then starts without a shell (~1 ms of CPU per pod start), or, without a C
# compiler, native/kata-proxy-hosted.sh, which holds each pod with the Node handle instead (it
# works the same but costs several MB per pod). A copy, not a symlink: npm pack leaves symlinks out.
# The handle is linked statically, with musl
# where musl-gcc is installed (Debian: musl-tools): ~25 KB PSS per handle in a fleet, against
# ~64 KB with glibc and ~115 KB dynamically linked (the loader's relocations and libc's data are
# private to each process).
cd "$(dirname "$0")/.." || exit 1
out=dist/native/kata-proxy-handle
src=native/kata-proxy-handle.c
cc=${CC:-}
if [ -z "$cc" ]; then
  for c in cc gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
hosted=bin/kata-proxy-hosted
# bin/kata-proxy-hosted: the handle where it was built, else the script (cp keeps its mode).
put_hosted() {
  cp "$1" "$hosted.tmp" && mv "$hosted.tmp" "$hosted"
}
mkdir -p dist/native
rm -f "$out" dist/native/host-addon.node
if [ -z "$cc" ]; then
  echo "kata-proxy: no C compiler (cc, gcc, clang or \$CC): host mode will hold each pod with a Node process instead of $out" >&2
  put_hosted native/kata-proxy-hosted.sh
  exit 0
fi

# The host's add-on (heap trim, dup): a shared object loaded into node, so linked against the node's
# own libc (glibc), never musl. Without it a host keeps what busy pods fragmented of its C heap, and
# runs every pod on its main thread.
if ! $cc -O2 -Wall -Wextra -shared -fPIC -o dist/native/host-addon.node.tmp native/host-addon.c; then
  echo "kata-proxy: cannot build dist/native/host-addon.node: the host will not give back the C heap busy pods leave, and runs every pod on one thread" >&2
else
  mv dist/native/host-addon.node.tmp dist/native/host-addon.node
fi

flags="-O2 -Wall -Wextra -s"
# musl's static startup dirties far fewer pages than glibc's: ~24 KB private per handle against ~56.
if [ -z "${CC:-}" ] && command -v musl-gcc >/dev/null 2>&1 && musl-gcc $flags -static -o "$out.tmp" "$src" 2>/dev/null; then
  :
elif ! $cc $flags -static -o "$out.tmp" "$src" 2>/dev/null; then
  echo "kata-proxy: cannot link $out statically (no libc.a?); linking it dynamically (about twice the memory per pod)" >&2
  if ! $cc $flags -o "$out.tmp" "$src"; then
    put_hosted native/kata-proxy-hosted.sh
    exit 1
  fi
fi
mv "$out.tmp" "$out"
put_hosted "$out"
