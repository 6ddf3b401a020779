// Datasets for the workloads: images and labels in two tensors, read from IDX files (the format of MNIST and
// Fashion-MNIST, plain or gzip-compressed).
//
//   auto train = iogrid::data::fashion_mnist("train");   // 60,000 images of 28 x 28, labels 0..9
//   auto test = iogrid::data::fashion_mnist("test");     // 10,000
//   auto part = train.shard(rank, world);                // every world-th example from rank on
//
// Rules: images are u8 [N, features] (pixels 0..255; models scale them to [0, 1]), labels i32 [N]. A missing,
// truncated or malformed file is an iogrid::Error naming the file and what is wrong with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "iogrid/tensor.hpp"

namespace iogrid::data {

struct Dataset {
  Tensor images;  // u8 [N, features]
  Tensor labels;  // i32 [N]

  std::size_t size() const { return labels.defined() ? labels.numel() : 0; }
  std::size_t features() const { return images.defined() && images.shape().size() == 2 ? std::size_t(images.dim(1)) : 0; }
  // Examples [begin, end) (copies).
  Dataset slice(std::size_t begin, std::size_t end) const;
  // Every world-th example starting at rank (copies); shards of one dataset differ in size by at most one.
  Dataset shard(int rank, int world) const;
  // From plain arrays (tests, generated data); throws when the sizes disagree.
  static Dataset from(std::vector<std::uint8_t> images, std::vector<std::int32_t> labels, std::size_t features);

  IOGRID_SERIALIZE(images, labels)
};

// One IDX file (magic 0x00000800 | type << 8 | dims; big-endian dimensions; then the data), gzip or plain:
// a u8 tensor with the file's shape. Only u8 IDX files (type 0x08) are read.
Tensor read_idx(const std::string& path);
// Images (IDX, 3 dims: N x rows x cols, flattened to [N, rows * cols]) and labels (IDX, 1 dim: N).
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path);

// Where Fashion-MNIST is: $IOGRID_FASHION_MNIST, else /usr/share/datasets/fashion-mnist (Debian's
// dataset-fashion-mnist, installed by scripts/setup).
std::string fashion_mnist_dir();
// split: "train" (60,000) or "test" (10,000).
Dataset fashion_mnist(const std::string& split, const std::string& dir = fashion_mnist_dir());

}  // namespace iogrid::data
