#pragma once
// .safetensors read and write (the format of huggingface/safetensors): 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. Reading validates the header strictly: a
// malformed, truncated or oversized file is an adnn::Error naming the file, never a crash or
// an out-of-bounds read. Writes are atomic (temporary file, flush, fsync, rename).
#include <adnn/core/tensor.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace adnn::io {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  const Tensor* find(const std::string& name) const;
};

// dtypes: F32, F64, F16, BF16, I32, I64, U8, BOOL.
SafeTensors load_safetensors(const std::string& path);
SafeTensors parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& name);
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// Writes `bytes` to `path` atomically: a temporary file beside it is written, flushed and
// fsync'ed, then renamed over `path` (and the directory fsync'ed). A crash at any point
// leaves either the old file or the new one, never a mix.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);
// Reads a whole regular file. A directory, a device (/dev/zero), a pipe or a file larger
// than max_bytes is an adnn::Error naming the path, raised before anything is read.
std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

}  // namespace adnn::io
