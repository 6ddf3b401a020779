#!/usr/bin/env bash
# scripts/bundle: the tarball unpacks elsewhere and its `run` starts the build's programs with the carried
# libraries, through the machine's C library and through the carried loader (as on a host with an older one).
# Usage: test_bundle.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1"; build="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$src/scripts/bundle" --build "$build" --out "$work/b.tar.xz"
mkdir "$work/x" && tar -C "$work/x" -xf "$work/b.tar.xz"
run="$work/x/iogrid-bundle/run"
"$run" iogrid version | grep -q "iogrid 0.1.0"
"$run" quickstart | tee "$work/q1" | tail -2
if "$run" no_such_program 2>/dev/null; then echo "an unknown program must fail" >&2; exit 1; fi
echo 99.0 > "$work/x/iogrid-bundle/lib/glibc/VERSION"   # pretend the machine's C library is older
"$run" quickstart > "$work/q2"
cmp "$work/q1" "$work/q2"
echo "bundle OK"
