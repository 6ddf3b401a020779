// A program a user writes outside iogrid's tree: tasks, an actor and a model from the train library.
// Run it as is (embedded cluster) or with --address HOST:PORT --token-file F (a real cluster: its tasks run in
// worker processes started from this executable on the nodes).
#include <iogrid/iogrid.hpp>
#include <iogrid/train.hpp>

#include <iostream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

int square(int x) { return x * x; }
IOGRID_REMOTE(square);

std::string where() { return iogrid::current_node(); }
IOGRID_REMOTE(where);

// A small model's prediction, computed wherever the task runs.
int predicted_classes(int n) {
  iogrid::nn::Model model(iogrid::nn::mlp({4, 8, 3}));
  std::vector<std::uint8_t> images(static_cast<std::size_t>(n) * 4, 7);
  auto p = model.predict(images.data(), n);
  return static_cast<int>(p.size());
}
IOGRID_REMOTE(predicted_classes);

class Counter {
 public:
  explicit Counter(int start) : n_(start) {}
  int add(int k) { return n_ += k; }

 private:
  int n_;
};
IOGRID_REMOTE(&Counter::add);

int main(int argc, char** argv) {
  iogrid::init(iogrid::options_from_args(argc, argv));
  std::vector<iogrid::ObjectRef<int>> refs;
  for (int i = 1; i <= 100; ++i) refs.push_back(iogrid::task(square).remote(i));
  auto squares = iogrid::get(refs);
  const long sum = std::accumulate(squares.begin(), squares.end(), 0L);
  auto counter = iogrid::actor<Counter>(10).remote();
  counter.call(&Counter::add).remote(5);
  const int total = iogrid::get(counter.call(&Counter::add).remote(1));
  const int classes = iogrid::get(iogrid::task(predicted_classes).remote(6));
  std::set<std::string> nodes;
  for (int i = 0; i < 8; ++i) nodes.insert(iogrid::get(iogrid::task(where).remote()));
  iogrid::shutdown();
  std::cout << "sum " << sum << ", counter " << total << ", predictions " << classes << ", ran on";
  for (const auto& n : nodes) std::cout << " " << n;
  std::cout << "\n";
  const bool ok = sum == 338350 && total == 16 && classes == 6;
  std::cout << (ok ? "consumer OK" : "consumer WRONG") << std::endl;
  return ok ? 0 : 1;
}
