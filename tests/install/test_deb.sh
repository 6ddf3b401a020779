#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` from the release build, unpacked into a scratch root with `dpkg -x`;
# checks its files, control data (dependencies, maintainer scripts, conffiles), that the packaged tool runs,
# and that systemd-analyze accepts the units (skipped, saying why, where that tool is missing).
# usage: test_deb.sh BUILD_DIR                      (prints "deb OK" at the end)
set -euo pipefail
build=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/iogrid-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" > "$work/cpack.log" 2>&1) \
  || { tail -20 "$work/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$work"/out/iogrid_*.deb)
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))"
root=$work/root
dpkg -x "$deb" "$root"
dpkg-deb -e "$deb" "$work/control"
for f in usr/bin/iogrid usr/lib/libiogrid.so usr/lib/libiogrid_train.so usr/include/iogrid/iogrid.hpp \
         usr/lib/cmake/iogrid/iogridConfig.cmake usr/lib/pkgconfig/iogrid.pc \
         usr/lib/systemd/system/iogrid-head.service usr/lib/systemd/system/iogrid-node.service \
         etc/iogrid/head.conf etc/iogrid/node.conf; do
  [ -e "$root/$f" ] || fail "the package lacks /$f"
done
grep -qx /etc/iogrid/head.conf "$work/control/conffiles" && grep -qx /etc/iogrid/node.conf "$work/control/conffiles" \
  || fail "the configuration files are not conffiles"
for s in postinst prerm postrm; do [ -x "$work/control/$s" ] || fail "no $s"; done
grep -q "adduser --system" "$work/control/postinst" || fail "postinst makes no system user"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libcaf-core libcapnp libssl3 libsqlite3 adduser; do
  [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
# The units run the packaged tool with the packaged configuration, as the system user, restarting on failure.
for u in head node; do
  unit=$root/usr/lib/systemd/system/iogrid-$u.service
  grep -qx "ExecStart=/usr/bin/iogrid $u \$IOGRID_$(echo "$u" | tr a-z A-Z)_OPTIONS" "$unit" || fail "iogrid-$u: ExecStart"
  grep -qx "EnvironmentFile=/etc/iogrid/$u.conf" "$unit" || fail "iogrid-$u: EnvironmentFile"
  grep -qx "Restart=on-failure" "$unit" && grep -qx "User=iogrid" "$unit" || fail "iogrid-$u: Restart/User"
  grep -q "^IOGRID_$(echo "$u" | tr a-z A-Z)_OPTIONS=" "$root/etc/iogrid/$u.conf" || fail "$u.conf sets no options"
done
# The packaged tool runs (on this machine's libraries) and knows the options its configuration passes.
"$root/usr/bin/iogrid" version > /dev/null || fail "the packaged iogrid does not run"
"$root/usr/bin/iogrid" head --help | grep -q -- "--state" || fail "iogrid head --help"
"$root/usr/bin/iogrid" node --help | grep -q -- "--work-dir" || fail "iogrid node --help"
if command -v systemd-analyze > /dev/null; then
  # Verify inside the scratch root (the ExecStart= binary is checked there); the system's own units give the
  # targets the services start after.
  cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/" 2>/dev/null || true
  (cd "$root" && systemd-analyze verify --root="$root" usr/lib/systemd/system/iogrid-head.service \
      usr/lib/systemd/system/iogrid-node.service) || fail "systemd-analyze verify"
  echo "systemd-analyze verify: both units accepted"
else
  echo "SKIPPED systemd-analyze verify: systemd-analyze is not installed on this machine"
fi
echo "deb OK"
