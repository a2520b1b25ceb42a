#include "npy.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "linattn/core/error.h"
#include "linattn/core/file_io.h"

namespace linattn::npy {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr int64_t kMaxHeader = 1 << 16;
constexpr int64_t kMaxElements = int64_t{1} << 36;  // 256 GiB of floats: beyond any real input

[[noreturn]] void bad(const std::string& source, const std::string& problem) {
  throw FormatError(source + ": " + problem);
}

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') { ++i_; break; }
      const std::string key = quoted();
      expect(':');
      if (key == "descr") { descr = quoted(); have_descr = true; }
      else if (key == "fortran_order") { fortran = boolean(); have_order = true; }
      else if (key == "shape") { shape = tuple(); have_shape = true; }
      else bad(source_, "unexpected .npy header key '" + key + "'");
      skip();
      if (peek() == ',') ++i_;
    }
    if (!have_descr || !have_order || !have_shape)
      bad(source_, "malformed .npy header: needs descr, fortran_order and shape");
  }

 private:
  char peek() { skip(); return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() { while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_; }
  void expect(char c) {
    if (peek() != c) bad(source_, std::string("malformed .npy header: expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') bad(source_, "malformed .npy header: expected a quoted string");
    const size_t end = s_.find(q, ++i_);
    if (end == std::string_view::npos) bad(source_, "malformed .npy header: unterminated string");
    std::string out(s_.substr(i_, end - i_));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip();
    if (s_.substr(i_, 4) == "True") { i_ += 4; return true; }
    if (s_.substr(i_, 5) == "False") { i_ += 5; return false; }
    bad(source_, "malformed .npy header: fortran_order is not True or False");
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      if (peek() == ')') { ++i_; return dims; }
      if (dims.size() >= 8) bad(source_, "malformed .npy header: too many dimensions");
      int64_t v = 0;
      size_t digits = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (++digits > 15) bad(source_, "absurd .npy dimension");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (digits == 0) bad(source_, "malformed .npy header: shape is not a tuple of integers");
      dims.push_back(v);
      if (peek() == 'L') ++i_;  // Python 2 longs
      if (peek() == ',') ++i_;
    }
  }

  std::string_view s_;
  const std::string& source_;
  size_t i_ = 0;
};

}  // namespace

namespace {

struct Header {
  int64_t rows = 0, cols = 0;
  int64_t data_start = 0;  // offset of the first data byte
};

// Everything before the data, from bytes that may stop anywhere after it.
Header parse_header(std::span<const std::byte> bytes, const std::string& source) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    bad(source, "not a .npy file (wrong magic)");
  const auto major = static_cast<uint8_t>(bytes[6]);
  int64_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<int64_t>(static_cast<uint8_t>(bytes[8])) | (static_cast<int64_t>(static_cast<uint8_t>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad(source, "truncated .npy header");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  } else {
    bad(source, ".npy version " + std::to_string(major) + " is not supported");
  }
  if (header_len > kMaxHeader || offset + header_len > static_cast<int64_t>(bytes.size()))
    bad(source, "truncated or absurd .npy header");
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(std::string_view(reinterpret_cast<const char*>(bytes.data() + offset), static_cast<size_t>(header_len)), source)
      .parse(descr, fortran, shape);
  if (descr != "<f4" && descr != "=f4")
    bad(source, "dtype '" + descr + "' is not supported: linattn reads float32 ('<f4'); convert with x.astype(np.float32)");
  if (fortran) bad(source, "Fortran order is not supported: save a C-order array (np.ascontiguousarray)");
  if (shape.size() != 2)
    bad(source, std::to_string(shape.size()) + "-D array: linattn reads 2-D arrays whose rows are vectors");
  const int64_t rows = shape[0], cols = shape[1];
  if (rows > kMaxElements || cols > kMaxElements || (cols > 0 && rows > kMaxElements / cols)) bad(source, "absurd shape");
  return {rows, cols, offset + header_len};
}

// Reads from `in` until `buf` holds `size` bytes or the input ends.
void read_up_to(std::istream& in, std::vector<char>& buf, int64_t size, const std::string& path) {
  const size_t had = buf.size();
  if (static_cast<int64_t>(had) >= size) return;
  buf.resize(static_cast<size_t>(size));
  in.read(buf.data() + had, static_cast<std::streamsize>(static_cast<size_t>(size) - had));
  if (in.bad()) throw FormatError("cannot read '" + path + "'");
  buf.resize(had + static_cast<size_t>(in.gcount()));
}

}  // namespace

Matrix parse_next(std::span<const std::byte>& bytes, const std::string& source) {
  const Header h = parse_header(bytes, source);
  Matrix m;
  m.rows = h.rows;
  m.cols = h.cols;
  const int64_t data_bytes = m.rows * m.cols * 4, start = h.data_start;
  const int64_t have = static_cast<int64_t>(bytes.size()) - start;
  if (have < data_bytes)
    bad(source, "truncated: " + std::to_string(have) + " data bytes for a " + std::to_string(m.rows) + " x " +
                    std::to_string(m.cols) + " float32 array (" + std::to_string(data_bytes) + ")");
  m.data.resize(static_cast<size_t>(m.rows * m.cols));
  if (data_bytes > 0) std::memcpy(m.data.data(), bytes.data() + start, static_cast<size_t>(data_bytes));
  bytes = bytes.subspan(static_cast<size_t>(start + data_bytes));
  return m;
}

Matrix parse(std::span<const std::byte> bytes, const std::string& source) {
  Matrix m = parse_next(bytes, source);
  if (!bytes.empty()) bad(source, std::to_string(bytes.size()) + " unexpected bytes after the data");
  return m;
}

// Reads in stages, never more than the header declares (and one byte to see that nothing
// follows), so that a device or FIFO (/dev/zero) is refused at once instead of read to its end.
Matrix load(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw FormatError("'" + path + "' is a directory, not a .npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("cannot open '" + path + "'");
  std::vector<char> buf;
  auto bytes = [&] { return std::as_bytes(std::span<const char>(buf)); };
  read_up_to(in, buf, 12, path);
  int64_t need = 10;
  if (buf.size() >= 10 && std::memcmp(buf.data(), kMagic, 6) == 0) {
    const auto major = static_cast<uint8_t>(buf[6]);
    uint32_t len = 0;
    if (major == 1) len = static_cast<uint8_t>(buf[8]) | (static_cast<uint32_t>(static_cast<uint8_t>(buf[9])) << 8);
    if ((major == 2 || major == 3) && buf.size() >= 12) std::memcpy(&len, buf.data() + 8, 4);
    need = (major == 1 ? 10 : 12) + std::min<int64_t>(len, kMaxHeader + 1);
  }
  read_up_to(in, buf, need, path);
  const Header h = parse_header(bytes(), path);  // refuses wrong magic, versions, headers, shapes
  read_up_to(in, buf, h.data_start + h.rows * h.cols * 4 + 1, path);
  return parse(bytes(), path);
}

namespace {

// The header of a version 1.0 array of `descr` elements, padded so that the data starts at a
// multiple of 64 bytes.
std::string header_of(const char* descr, int64_t rows, int64_t cols) {
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" +
                     std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  return out + dict;
}

std::vector<std::byte> encode_array(const char* descr, const void* data, int64_t rows, int64_t cols, size_t size) {
  const std::string header = header_of(descr, rows, cols);
  std::vector<std::byte> out(header.size() + static_cast<size_t>(rows * cols) * size);
  std::memcpy(out.data(), header.data(), header.size());
  if (rows * cols > 0) std::memcpy(out.data() + header.size(), data, static_cast<size_t>(rows * cols) * size);
  return out;
}

}  // namespace

std::vector<std::byte> encode(const float* data, int64_t rows, int64_t cols) {
  return encode_array("<f4", data, rows, cols, 4);
}

void encode(const float* data, int64_t rows, int64_t cols, std::string& out) {
  out += header_of("<f4", rows, cols);
  out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(rows * cols) * 4);
}

void save(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  write_file_atomic(path, encode(data, rows, cols));
}

void save_int64(const std::string& path, const int64_t* data, int64_t rows, int64_t cols) {
  write_file_atomic(path, encode_array("<i8", data, rows, cols, 8));
}

}  // namespace linattn::npy
