// iogrid: the whole public API.
//
//     #include <iogrid/iogrid.hpp>
//     int square(int x) { return x * x; }
//     IOGRID_REMOTE(square);
//     int main() {
//       iogrid::init();                                   // embedded cluster with this machine's resources
//       auto r = iogrid::task(square).remote(12);
//       std::cout << iogrid::get(r) << "\n";              // 144
//       iogrid::shutdown();
//     }
#pragma once

#include "iogrid/actor.hpp"
#include "iogrid/bytes.hpp"
#include "iogrid/clusters.hpp"
#include "iogrid/collective.hpp"
#include "iogrid/errors.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/options.hpp"
#include "iogrid/remote.hpp"
#include "iogrid/runtime.hpp"
#include "iogrid/serialization.hpp"
#include "iogrid/tensor.hpp"
