#!/bin/sh
# kata-proxy-hosted where no C compiler was found: native/build.sh copies this script to
# bin/kata-proxy-hosted then, and the compiled handle (native/kata-proxy-handle.c) there
# otherwise, so that the runtime's [proxy.kata] path starts the handle itself, without a shell
# (~1 ms of CPU per pod start). Same argv as bin/kata-proxy, plus -control-socket PATH (or
# KATA_PROXY_CONTROL_SOCKET) and -fallback (or KATA_PROXY_HOSTED_FALLBACK=1); README "Kata
# runtime with host mode".
root=${0%/bin/*}
# Started through a symlink elsewhere: find the package (readlink costs a process, so only then).
if [ "$root" = "$0" ] || [ ! -d "$root/dist" ]; then
  self=$(readlink -f -- "$0" 2>/dev/null) || self=$0
  root=${self%/bin/*}
fi
# A handle built after this script was put in place.
if [ -x "$root/dist/native/kata-proxy-handle" ]; then
  exec "$root/dist/native/kata-proxy-handle" "$@"
fi
# A Node process holds the pod instead (~13 MB PSS per pod against ~25 KB), with bin/kata-proxy's
# memory flags.
exec env UV_THREADPOOL_SIZE=1 node --v8-pool-size=1 --max-semi-space-size=1 "$root/dist/src/hosted/node-handle.js" "$@"
