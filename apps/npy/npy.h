// NumPy .npy files, the CLI's exchange format for vectors: float32, C order, 2-D (rows are
// vectors). Anything else is rejected with a FormatError naming the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace linattn::npy {

struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;  // rows * cols, row-major
};

Matrix parse(std::span<const std::byte> bytes, const std::string& source);
// Parses the array at the front of `bytes` and moves `bytes` past it (arrays concatenated in
// one buffer, as the lookup service takes them).
Matrix parse_next(std::span<const std::byte>& bytes, const std::string& source);
// The bytes of a version 1.0 .npy file holding rows x cols float32 numbers.
std::vector<std::byte> encode(const float* data, int64_t rows, int64_t cols);
// The same bytes appended to `out` (an HTTP body, without another copy).
void encode(const float* data, int64_t rows, int64_t cols, std::string& out);
Matrix load(const std::string& path);
// Writes a version 1.0 file atomically (temporary file, fsync, rename).
void save(const std::string& path, const float* data, int64_t rows, int64_t cols);
// The same for int64 elements (search results' memory indices); never read back by linattn.
void save_int64(const std::string& path, const int64_t* data, int64_t rows, int64_t cols);

}  // namespace linattn::npy
