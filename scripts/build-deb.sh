#!/bin/sh
# npm run deb [-- TARBALL]: builds kata-proxy_VERSION_ARCH.deb with dpkg-deb.
#
# The package is the npm package (TARBALL, or `npm pack`, which builds first) installed with its
# production dependencies for Debian's own Node (/usr/bin/node; KATA_PROXY_DEB_NODE to change):
#   /usr/lib/kata-proxy            the program, its node_modules and the native handle
#   /usr/bin/kata-proxy, /usr/bin/kata-proxy-hosted
#   /lib/systemd/system            the units, starting /usr/bin/kata-proxy
#   /etc/kata-proxy                host.env and pod-defaults.env (conffiles)
#   /usr/share/doc/kata-proxy      README.md, SECURITY.txt, copyright, changelog
# Needs dpkg-dev, a C compiler and Node's headers (/usr/include/node): the native handle and the
# sd-notify and modern-syslog add-ons are built here, for that Node's ABI. KATA_PROXY_DEB_OUT
# names the output directory (default: the checkout).
set -eu
cd "$(dirname "$0")/.."
checkout=$PWD
fail() { echo "build-deb: $*" >&2; exit 1; }

node=${KATA_PROXY_DEB_NODE:-/usr/bin/node}
[ -x "$node" ] || fail "no $node (Debian: apt install nodejs)"
[ -f /usr/include/node/node.h ] || fail "no Node headers in /usr/include/node (Debian: apt install libnode-dev)"
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian: apt install dpkg-dev binutils)"
done
# npm and node-gyp run on, and build for, the Node the package depends on.
PATH=$(dirname "$node"):$PATH
npm_config_nodedir=/usr
export PATH npm_config_nodedir

version=$("$node" -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
major=$("$node" -p 'process.versions.node.split(".")[0]')
out=${KATA_PROXY_DEB_OUT:-$checkout}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 022

tarball=${1:-}
if [ -z "$tarball" ]; then
  tarball=$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)
fi
[ -f "$tarball" ] || fail "no such tarball: $tarball"
tarball=$(readlink -f "$tarball")

echo "build-deb: installing $(basename "$tarball") for Node $("$node" -v)" >&2
npm install --global --prefix "$work/prefix" --omit=dev --no-audit --no-fund --loglevel=error \
  --allow-scripts=kata-proxy,sd-notify,modern-syslog,@serialport/bindings-cpp "$tarball" >&2

root=$work/root
lib=$root/usr/lib/kata-proxy
doc=$root/usr/share/doc/kata-proxy
mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/kata-proxy" "$doc" "$root/DEBIAN"
mv "$work/prefix/lib/node_modules/kata-proxy" "$lib"

# What a package must not lack: the handle (else every pod costs a Node process) and add-ons that
# load (else Type=notify units never become ready).
[ -x "$lib/dist/native/kata-proxy-handle" ] || fail "the native handle was not built (no C compiler?)"
[ -f "$lib/dist/native/host-addon.node" ] || fail "the heap trimmer add-on was not built (no C compiler?)"
(cd "$lib" && "$node" -e 'require("sd-notify"); require("modern-syslog")') || fail "sd-notify or modern-syslog does not load"

# Only what runs: not the handle's C source; of the dependencies, not their tests, docs,
# benchmarks and examples, the add-ons' C++ sources and node-gyp leftovers (objects, Makefiles,
# build paths), prebuilt bindings of other systems, nor the headers only a build needs (nan,
# node-addon-api). Add-ons stripped.
modules=$lib/node_modules
rm -rf "$lib/native" "$lib/bin/kata-proxy-hosted.tmp" "$lib/dist/.compile-cache" "$modules/.package-lock.json" "$modules/nan" "$modules/node-addon-api"
find "$modules" -depth -type d \( -name test -o -name tests -o -name docs -o -name doc -o -name benchmarks \
  -o -name examples -o -name example -o -name .github -o -path '*/bindings-cpp/src' \) -exec rm -rf {} +
find "$modules" -type f \( -name '.*' -o -name '*.md' ! -iname 'licen[cs]e*' -o -name '*.html' -o -name '*.gyp' -o -name '*.gypi' \
  -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name Makefile \) -delete
find "$modules" -path '*/build/*' -type f ! -regex '.*/build/Release/[^/]*\.node' -delete
find "$modules" -path '*/prebuilds/*' -type f ! -path '*/prebuilds/linux-x64/*glibc*' -delete
find "$modules" -depth -type d -empty -delete
find "$modules" -name '*.node' -exec strip --strip-unneeded {} + -exec chmod 0644 {} +
strip --strip-unneeded "$lib/dist/native/host-addon.node" && chmod 0644 "$lib/dist/native/host-addon.node"
mv "$lib/README.md" "$doc/README.md"
mv "$lib/systemd/SECURITY.txt" "$doc/SECURITY.txt"

# The commands run the Node the package depends on (and its add-ons were built for), not whatever
# `node` comes first on the caller's PATH.
# bin/kata-proxy is sh and JavaScript in one file (so that `node bin/kata-proxy` works in a
# checkout); a package ships them apart, each a file its checker can read: the sh part runs the
# JavaScript part, bin/kata-proxy.mjs.
split=$(grep -n '^\*/$' "$lib/bin/kata-proxy" | head -1 | cut -d: -f1)
[ -n "$split" ] || fail "bin/kata-proxy: no end of its sh part (a line '*/')"
tail -n +"$((split + 1))" "$lib/bin/kata-proxy" >"$lib/bin/kata-proxy.mjs"
head -n "$((split - 1))" "$lib/bin/kata-proxy" | sed "1,2{/^':' \/\*$/d}" |
  sed "s|^exec node \$flags \"\$root/bin/kata-proxy\" |exec $node \$flags \"\$root/bin/kata-proxy.mjs\" |; s|exec node \$flags \"\$run\" |exec $node \$flags \"\$run\" |" >"$lib/bin/kata-proxy.sh"
mv "$lib/bin/kata-proxy.sh" "$lib/bin/kata-proxy"
chmod 0755 "$lib/bin/kata-proxy"
chmod 0644 "$lib/bin/kata-proxy.mjs"
sh -n "$lib/bin/kata-proxy" || fail "bin/kata-proxy: its sh part does not parse"
! grep -q 'exec node ' "$lib/bin/kata-proxy" || fail "bin/kata-proxy: an exec of the node on PATH is left (changed shape?)"
# kata-proxy-hosted is the native handle itself (the install step copied it there): one file, linked.
cmp -s "$lib/bin/kata-proxy-hosted" "$lib/dist/native/kata-proxy-handle" || fail "bin/kata-proxy-hosted is not the native handle"
ln -sf ../dist/native/kata-proxy-handle "$lib/bin/kata-proxy-hosted"
ln -s ../lib/kata-proxy/bin/kata-proxy "$root/usr/bin/kata-proxy"
ln -s ../lib/kata-proxy/bin/kata-proxy-hosted "$root/usr/bin/kata-proxy-hosted"
for host in '' --host; do
  "$node" "$lib/bin/kata-proxy.mjs" install-units --dir "$root/lib/systemd/system" --exec-path /usr/bin/kata-proxy $host >/dev/null
done
rm -rf "$lib/dist/.compile-cache"
cp packaging/deb/host.env packaging/deb/pod-defaults.env "$root/etc/kata-proxy/"
cp packaging/deb/copyright "$doc/copyright"

name=${DEBFULLNAME:-$(git config user.name 2>/dev/null || echo kata-proxy maintainers)}
email=${DEBEMAIL:-$(git config user.email 2>/dev/null || echo kata-proxy@example.org)}
maintainer="$name <$email>"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'kata-proxy (%s) unstable; urgency=medium\n\n  * Release %s (see /usr/share/doc/kata-proxy/README.md).\n\n -- %s  %s\n' \
  "$version" "$version" "$maintainer" "$date" | gzip -9n >"$doc/changelog.gz"

find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod go-w,a+r {} +
mkdir -p "$root/usr/share/lintian/overrides"
cp packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/kata-proxy"

# Shared libraries the add-ons link (libc, libstdc++, libsystemd) become dependencies.
mkdir -p "$work/debian"
printf 'Source: kata-proxy\n\nPackage: kata-proxy\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && find root -type f \( -name '*.node' -o -path '*/dist/native/*' \) -print0 |
  xargs -0 dpkg-shlibdeps -O --ignore-missing-info 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
# The add-ons are built for this Node's ABI: another major needs a rebuilt package.
depends="nodejs (>= $major), nodejs (<< $((major + 1)))${shlibs:+, $shlibs}"

cat >"$root/DEBIAN/control" <<EOF
Package: kata-proxy
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: admin
Priority: optional
Description: Kata Containers 1.x proxy: host connections over the guest's serial channel
 kata-proxy multiplexes the connections of the Kata runtime and shims to the
 agent of a pod's virtual machine over one virtio-serial channel, with Yamux.
 It runs as one daemon per pod (kata-proxy@ID.service) or as one host
 process serving every pod (kata-proxy-host.service), whose per-pod handles
 the Kata runtime starts as its proxy (/usr/bin/kata-proxy-hosted).
EOF
printf '/etc/kata-proxy/host.env\n/etc/kata-proxy/pod-defaults.env\n' >"$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf "%P\0" | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

deb=$out/kata-proxy_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
