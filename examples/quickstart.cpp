// Quickstart: a task graph on the embedded cluster. Fan-out, a dependent stage, a tree reduction;
// the result is checked against the same computation done locally.
#include <iogrid/iogrid.hpp>

#include <iostream>
#include <numeric>
#include <vector>

long square(long x) { return x * x; }
long add(long a, long b) { return a + b; }
IOGRID_REMOTE(square);
IOGRID_REMOTE(add);

int main() {
  iogrid::init();
  const long n = 1000;

  // Fan-out: one task per input.
  std::vector<iogrid::ObjectRef<long>> level;
  for (long i = 1; i <= n; ++i) level.push_back(iogrid::task(square).remote(i));
  std::cout << "submitted " << n << " square tasks\n";

  // Tree reduction: each add waits for its two inputs without occupying a worker.
  int depth = 0;
  while (level.size() > 1) {
    std::vector<iogrid::ObjectRef<long>> next;
    for (std::size_t i = 0; i + 1 < level.size(); i += 2) next.push_back(iogrid::task(add).remote(level[i], level[i + 1]));
    if (level.size() % 2) next.push_back(level.back());
    level = std::move(next);
    ++depth;
  }
  long got = iogrid::get(level[0]);
  long want = n * (n + 1) * (2 * n + 1) / 6;
  std::cout << "sum of squares 1.." << n << " = " << got << " (reduction depth " << depth << ")\n";
  iogrid::shutdown();
  if (got != want) {
    std::cerr << "WRONG: expected " << want << "\n";
    return 1;
  }
  std::cout << "OK: matches the local computation\n";
  return 0;
}
