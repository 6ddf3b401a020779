// Generated classification data for the workloads' tests: `classes` noisy patterns over `features` pixels
// (class c lights every pixel f with f % classes == c), shuffled, reproducible from the seed.
#pragma once

#include <iogrid/data.hpp>

#include <random>

inline iogrid::data::Dataset synthetic(std::size_t n, std::size_t features = 32, int classes = 4, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-60, 60), label(0, classes - 1);
  std::vector<std::uint8_t> images(n * features);
  std::vector<std::int32_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = label(rng);
    for (std::size_t f = 0; f < features; ++f) {
      int base = int(f % std::size_t(classes)) == labels[i] ? 170 : 70;
      images[i * features + f] = static_cast<std::uint8_t>(std::clamp(base + noise(rng), 0, 255));
    }
  }
  return iogrid::data::Dataset::from(std::move(images), std::move(labels), features);
}
