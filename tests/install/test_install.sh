#!/usr/bin/env bash
# An installed iogrid, used the way a user's project would: `cmake --install` into a scratch prefix, then
# tests/install/consumer (find_package(iogrid CONFIG REQUIRED COMPONENTS train), shared and static) built
# out of tree and run on the embedded cluster and on a real head and node started from the installed tool
# (its tasks run in worker processes made from the consumer's executable); the same program built with
# `pkg-config --cflags --libs iogrid-train` runs too.
# usage: test_install.sh SOURCE_DIR BUILD_DIR        (prints "install OK" at the end)
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/iogrid-install-test.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log" || fail "cmake --install"
for f in bin/iogrid include/iogrid/iogrid.hpp include/iogrid/core/core.hpp include/iogrid/train.hpp \
         include/iogrid/train/replica.hpp include/iogrid/tune/asha.hpp lib/cmake/iogrid/iogridConfig.cmake \
         lib/pkgconfig/iogrid.pc lib/pkgconfig/iogrid-tune.pc; do
  [ -e "$prefix/$f" ] || fail "missing $f"
done
for lib in iogrid iogrid_data iogrid_nn iogrid_train iogrid_tune iogrid_infer; do
  [ -e "$prefix/lib/lib$lib.so" ] && [ -e "$prefix/lib/lib$lib.a" ] || fail "missing lib$lib.so or lib$lib.a"
done
# Nothing of the tree's internals is installed as a header (users include iogrid/ only).
[ ! -e "$prefix/include/runtime" ] && [ ! -e "$prefix/include/scheduler" ] || fail "internal headers installed"
# The service files are the Debian package's only.
[ ! -e "$prefix/etc" ] || fail "a plain install wrote etc/"

# find_package, shared and static.
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log" 2>&1 || fail "configuring the consumer"
cmake --build "$work/consumer" > "$work/build.log" 2>&1 || fail "building the consumer"
"$work/consumer/consumer" > "$work/embedded.log" 2>&1 || fail "consumer (embedded)"
grep -q "consumer OK" "$work/embedded.log" || fail "consumer (embedded) output"
"$work/consumer/consumer_static" > "$work/static.log" 2>&1 || fail "consumer_static (embedded)"
# A component that does not exist is refused by name.
mkdir -p "$work/bad"
printf 'cmake_minimum_required(VERSION 3.20)\nproject(bad CXX)\nfind_package(iogrid CONFIG REQUIRED COMPONENTS warp)\n' > "$work/bad/CMakeLists.txt"
if cmake -S "$work/bad" -B "$work/bad/build" -DCMAKE_PREFIX_PATH="$prefix" > "$work/bad.log" 2>&1; then fail "COMPONENTS warp accepted"; fi
grep -q "no component 'warp'" "$work/bad.log" || fail "COMPONENTS warp: no clear error"

# pkg-config.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# shellcheck disable=SC2046
c++ -O1 "$src/tests/install/consumer/main.cpp" -o "$work/pc_consumer" $(pkg-config --cflags --libs iogrid-train) \
    > "$work/pkgconfig.log" 2>&1 || fail "building with pkg-config"
LD_LIBRARY_PATH=$prefix/lib "$work/pc_consumer" > "$work/pc.log" 2>&1 || fail "pkg-config consumer"

# Cluster mode: head and node from the installed tool; the consumer's tasks run in its own worker processes.
# (A generous node timeout: ctest runs this beside tests that load both cores.)
"$prefix/bin/iogrid" head --port 0 --token-file "$work/token" --no-dashboard --node-timeout-ms 10000 > "$work/head.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q IOGRID_HEAD_PORT= "$work/head.log" && break; sleep 0.1; done
port=$(grep -o 'IOGRID_HEAD_PORT=[0-9]*' "$work/head.log" | cut -d= -f2)
[ -n "$port" ] || fail "the installed head did not start"
"$prefix/bin/iogrid" node --address "127.0.0.1:$port" --token-file "$work/token" --name installed-node \
    --num-cpus 2 --work-dir "$work/node" > "$work/node.log" 2>&1 &
pids+=($!)
# The consumer starts once the node has joined (work sent to a cluster with no nodes is refused at once).
for _ in $(seq 300); do grep -q "joined the head" "$work/node.log" && break; sleep 0.1; done
grep -q "joined the head" "$work/node.log" || fail "the installed node did not join within 30 s"
for mode in consumer consumer_static; do
  timeout 120 "$work/consumer/$mode" --address "127.0.0.1:$port" --token-file "$work/token" > "$work/$mode-cluster.log" 2>&1 \
    || fail "$mode (cluster mode)"
  grep -q "ran on installed-node" "$work/$mode-cluster.log" || fail "$mode: its tasks did not run on the node"
  grep -q "consumer OK" "$work/$mode-cluster.log" || fail "$mode (cluster mode) output"
done
echo "install OK"
