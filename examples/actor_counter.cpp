// A stateful actor: a running average that many tasks feed, queried at the end.
#include <iogrid/iogrid.hpp>

#include <iostream>

struct Average {
  double sum = 0;
  long count = 0;
  long add(double x) {
    sum += x;
    return ++count;
  }
  double mean() const { return count ? sum / double(count) : 0.0; }
};
IOGRID_REMOTE(&Average::add);
IOGRID_REMOTE(&Average::mean);

double measure(int i) { return double(i % 10); }
IOGRID_REMOTE(measure);

int main() {
  iogrid::init();
  auto avg = iogrid::actor<Average>().remote();
  iogrid::ObjectRef<long> last;
  for (int i = 0; i < 1000; ++i) last = avg.call(&Average::add).remote(iogrid::task(measure).remote(i));
  long n = iogrid::get(last);
  double m = iogrid::get(avg.call(&Average::mean).remote());
  std::cout << "actor saw " << n << " measurements, mean " << m << "\n";
  iogrid::shutdown();
  bool ok = n == 1000 && m == 4.5;
  std::cout << (ok ? "OK" : "WRONG: expected 1000 measurements with mean 4.5") << "\n";
  return ok ? 0 : 1;
}
