// Fuzz targets for every reader of outside bytes. Each fuzz_NAME.cpp defines one target with
// IOGRID_FUZZ_TARGET(NAME, seeds) { ... }: built with -DIOGRID_LIBFUZZER it is a libFuzzer entry point (the
// fuzz preset, scripts/fuzz); otherwise it registers itself with fuzz_replay, which runs the kept corpus (and
// the seeds, written by the formats' own writers) through it under ctest, so CI replays every kept input.
// A target returns 0; it catches only the errors its reader documents: any other exception is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace iogrid::fuzz {

using Target = int (*)(const std::uint8_t*, std::size_t);
using Seeds = std::vector<std::string> (*)();
bool add(const char* name, Target target, Seeds seeds);

// A file holding these bytes (one per process, rewritten each call), for readers that take a path.
std::string scratch_file(const std::uint8_t* data, std::size_t size);

}  // namespace iogrid::fuzz

#ifdef IOGRID_LIBFUZZER
#define IOGRID_FUZZ_TARGET(name, seeds)                                                    \
  static int name##_one(const std::uint8_t*, std::size_t);                                 \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* d, std::size_t n) {            \
    return name##_one(d, n);                                                               \
  }                                                                                        \
  static int name##_one(const std::uint8_t* data, std::size_t size)
#else
#define IOGRID_FUZZ_TARGET(name, seeds)                                                    \
  static int name##_one(const std::uint8_t*, std::size_t);                                 \
  [[maybe_unused]] static const bool name##_added = iogrid::fuzz::add(#name, &name##_one, &seeds); \
  static int name##_one(const std::uint8_t* data, std::size_t size)
#endif
