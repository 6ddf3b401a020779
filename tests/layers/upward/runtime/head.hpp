// A runtime header that includes a library's public header: the layer check must refuse it.
#pragma once
#include "iogrid/core/ok.hpp"
#include "iogrid/train.hpp"
