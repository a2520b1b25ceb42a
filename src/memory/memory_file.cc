#include "linattn/memory/memory_file.h"

#include <xxhash.h>

#include <bit>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "core/file_io.h"
#include "linattn/core/error.h"
#include "kernels/simd.h"

namespace linattn {
namespace {

static_assert(std::endian::native == std::endian::little,
              "linattn files are little-endian and read in place: a big-endian host needs byte swapping");

constexpr char kMagic[8] = {'L', 'I', 'N', 'A', 'T', 'T', 'N', 'M'};
constexpr uint32_t kByteOrderMark = 0x01020304u;
constexpr int64_t kChecksumOffset = 120;
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr uint8_t kFlagNormalize = 1, kFlagGated = 2, kFlagSymmetric = 4;

int64_t align64(int64_t x) { return (x + 63) / 64 * 64; }

// Where each payload section starts, relative to the payload, and its total size.
struct PayloadLayout {
  int64_t state_elements = 0, state_bytes = 0, normalizer_offset = -1, lambda_offset = -1, total = 0;
};

PayloadLayout payload_layout(const MemoryInfo& info) {
  PayloadLayout p;
  const int64_t dk = info.config.key_dim, dv = info.config.value_dim;
  switch (info.layout) {
    case Layout::full: p.state_elements = dk * dv; break;
    case Layout::packed_symmetric: p.state_elements = dk * (dk + 1) / 2; break;
    case Layout::low_rank: p.state_elements = dk * info.rank; break;
  }
  p.state_bytes = p.state_elements * dtype_size(info.config.dtype);
  int64_t end = p.state_bytes;
  if (info.config.normalize || info.config.kind == MemoryKind::content_lambda) {
    p.normalizer_offset = align64(end);
    end = p.normalizer_offset + (info.config.kind == MemoryKind::content_lambda ? 2 * dk : dk) * 4;
  }
  if (info.layout == Layout::low_rank) {
    p.lambda_offset = align64(end);
    end = p.lambda_offset + info.rank * 4;
  }
  p.total = end;
  return p;
}

template <typename T>
void put(std::vector<std::byte>& buf, int64_t offset, T value) {
  std::memcpy(buf.data() + offset, &value, sizeof(T));
}
template <typename T>
T get(std::span<const std::byte> buf, int64_t offset) {
  T value;
  std::memcpy(&value, buf.data() + offset, sizeof(T));
  return value;
}

uint64_t checksum(std::span<const std::byte> header, std::span<const std::byte> payload) {
  XXH3_state_t* state = XXH3_createState();
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, header.data(), static_cast<size_t>(kChecksumOffset));
  XXH3_64bits_update(state, payload.data(), payload.size());
  const uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return h;
}

// Header and zeroed payload for `info`; the caller fills the payload, then seal() sums it.
std::vector<std::byte> start_blob(const MemoryInfo& info, PayloadLayout& layout) {
  layout = payload_layout(info);
  std::vector<std::byte> buf(static_cast<size_t>(kMemoryHeaderBytes + layout.total), std::byte{0});
  std::memcpy(buf.data(), kMagic, 8);
  put<uint32_t>(buf, 8, kMemoryFormatVersion);
  put<uint32_t>(buf, 12, kByteOrderMark);
  put<uint32_t>(buf, 16, static_cast<uint32_t>(kMemoryHeaderBytes));
  put<uint8_t>(buf, 20, static_cast<uint8_t>(info.config.dtype));
  put<uint8_t>(buf, 21, static_cast<uint8_t>(info.layout));
  put<uint8_t>(buf, 22, static_cast<uint8_t>(info.config.feature_map));
  put<uint8_t>(buf, 23, static_cast<uint8_t>((info.config.normalize ? kFlagNormalize : 0) |
                                             (info.config.gated ? kFlagGated : 0) |
                                             (info.config.symmetric ? kFlagSymmetric : 0)));
  put<int64_t>(buf, 24, info.config.key_dim);
  put<int64_t>(buf, 32, info.config.value_dim);
  put<int64_t>(buf, 40, info.rank);
  put<int64_t>(buf, 48, info.tokens);
  put<uint64_t>(buf, 56, static_cast<uint64_t>(layout.total));
  put<double>(buf, 64, info.compression_error);
  put<uint8_t>(buf, 72, static_cast<uint8_t>(info.config.kind));
  return buf;
}

void seal(std::vector<std::byte>& buf) {
  const std::span<const std::byte> all(buf);
  put<uint64_t>(buf, kChecksumOffset, checksum(all.first(kMemoryHeaderBytes), all.subspan(kMemoryHeaderBytes)));
}

// Writes n fp32 numbers into the payload as `dtype`.
void store(std::vector<std::byte>& buf, int64_t offset, const float* x, int64_t n, DType dtype) {
  std::byte* dst = buf.data() + kMemoryHeaderBytes + offset;
  if (dtype == DType::f32) {
    std::memcpy(dst, x, static_cast<size_t>(n) * 4);
  } else {
    std::vector<uint16_t> tmp(static_cast<size_t>(n));
    kernels::simd::f32_to_bf16(x, tmp.data(), n);
    std::memcpy(dst, tmp.data(), static_cast<size_t>(n) * 2);
  }
}

[[noreturn]] void bad(const std::string& source, const std::string& problem) {
  throw FormatError(source + ": " + problem);
}

// Validates the header (not the checksum) and returns what it declares.
MemoryInfo read_header(std::span<const std::byte> b, const std::string& source) {
  if (static_cast<int64_t>(b.size()) < kMemoryHeaderBytes)
    bad(source, "truncated: " + std::to_string(b.size()) + " bytes, a memory header has " +
                    std::to_string(kMemoryHeaderBytes));
  if (std::memcmp(b.data(), kMagic, 8) != 0) bad(source, "not a linattn memory (wrong magic)");
  const auto version = get<uint32_t>(b, 8);
  if (version < 1 || version > kMemoryFormatVersion)
    bad(source, "format version " + std::to_string(version) + " is not supported (this build reads 1 to " +
                    std::to_string(kMemoryFormatVersion) + ")");
  if (get<uint32_t>(b, 12) != kByteOrderMark) bad(source, "wrong byte order mark (not little-endian or corrupted)");
  if (get<uint32_t>(b, 16) != kMemoryHeaderBytes) bad(source, "wrong header size " + std::to_string(get<uint32_t>(b, 16)));
  MemoryInfo info;
  const auto dtype = get<uint8_t>(b, 20), layout = get<uint8_t>(b, 21), map = get<uint8_t>(b, 22),
             flags = get<uint8_t>(b, 23);
  if (dtype > 1) bad(source, "unknown dtype code " + std::to_string(dtype));
  if (layout > 2) bad(source, "unknown layout code " + std::to_string(layout));
  if (map > 2) bad(source, "unknown feature map code " + std::to_string(map));
  if (flags & ~(kFlagNormalize | kFlagGated | kFlagSymmetric)) bad(source, "unknown flags " + std::to_string(flags));
  info.config.dtype = static_cast<DType>(dtype);
  info.layout = static_cast<Layout>(layout);
  info.config.feature_map = static_cast<FeatureMap>(map);
  info.config.normalize = flags & kFlagNormalize;
  info.config.gated = flags & kFlagGated;
  info.config.symmetric = flags & kFlagSymmetric;
  info.config.key_dim = get<int64_t>(b, 24);
  info.config.value_dim = get<int64_t>(b, 32);
  info.rank = get<int64_t>(b, 40);
  info.tokens = get<int64_t>(b, 48);
  info.compression_error = get<double>(b, 64);
  const int64_t dk = info.config.key_dim, dv = info.config.value_dim;
  if (dk < 1 || dk > kMaxDim || dv < 1 || dv > kMaxDim)
    bad(source, "implausible widths dk = " + std::to_string(dk) + ", dv = " + std::to_string(dv));
  if (info.tokens < 0) bad(source, "negative token count");
  if (info.config.symmetric && (dk != dv || info.config.feature_map != FeatureMap::identity))
    bad(source, "symmetric flag with dk != dv or a feature map");
  if (info.layout != Layout::full && !info.config.symmetric)
    bad(source, std::string(to_string(info.layout)) + " layout on a memory that is not symmetric");
  if (info.layout == Layout::low_rank) {
    if (info.rank < 1 || info.rank > dk) bad(source, "rank " + std::to_string(info.rank) + " outside [1, d]");
    if (!(info.compression_error >= 0.0 && info.compression_error <= 1.0))
      bad(source, "compression error outside [0, 1]");
  } else if (info.rank != 0 || info.compression_error != 0.0) {
    bad(source, "rank or compression error set on an uncompressed memory");
  }
  // Version 2 added the kind at byte 72; version 1 files have 0 there (linear).
  const auto kind = get<uint8_t>(b, 72);
  if (kind > 3 || (version == 1 && kind != 0)) bad(source, "unknown memory kind code " + std::to_string(kind));
  info.config.kind = static_cast<MemoryKind>(kind);
  if (info.config.kind != MemoryKind::linear) {
    if (info.config.feature_map != FeatureMap::identity || info.config.normalize || info.config.gated)
      bad(source, std::string(to_string(info.config.kind)) + " memory with a feature map, normaliser or gates");
    if (info.config.symmetric && info.config.kind != MemoryKind::galerkin)
      bad(source, std::string(to_string(info.config.kind)) + " memory flagged symmetric");
  }
  for (int64_t off = 73; off < kChecksumOffset; ++off)
    if (b[static_cast<size_t>(off)] != std::byte{0}) bad(source, "reserved header bytes are not zero");
  const PayloadLayout p = payload_layout(info);
  if (get<uint64_t>(b, 56) != static_cast<uint64_t>(p.total))
    bad(source, "declared payload of " + std::to_string(get<uint64_t>(b, 56)) + " bytes, the dims imply " +
                    std::to_string(p.total));
  info.payload_bytes = p.total;
  return info;
}

}  // namespace

std::vector<std::byte> serialize(const Memory& memory) {
  const MemoryConfig& c = memory.config();
  MemoryInfo info;
  info.config = c;
  info.layout = c.symmetric ? Layout::packed_symmetric : Layout::full;
  info.tokens = memory.tokens();
  PayloadLayout p;
  std::vector<std::byte> buf = start_blob(info, p);
  const float* M = memory.state().data;
  const int64_t dk = c.key_dim, dv = c.value_dim;
  if (info.layout == Layout::full) {
    store(buf, 0, M, dk * dv, c.dtype);
  } else {  // upper triangle, row by row
    int64_t off = 0;
    for (int64_t i = 0; i < dk; ++i) {
      store(buf, off * dtype_size(c.dtype), M + i * dv + i, dk - i, c.dtype);
      off += dk - i;
    }
  }
  if (p.normalizer_offset >= 0)
    store(buf, p.normalizer_offset, memory.normalizer().data(), static_cast<int64_t>(memory.normalizer().size()), DType::f32);
  seal(buf);
  return buf;
}

std::vector<std::byte> serialize_low_rank(const MemoryInfo& info_in, std::span<const float> u,
                                          std::span<const float> lambda,
                                          std::span<const float> normalizer) {
  MemoryInfo info = info_in;
  info.layout = Layout::low_rank;
  PayloadLayout p;
  std::vector<std::byte> buf = start_blob(info, p);
  store(buf, 0, u.data(), info.config.key_dim * info.rank, info.config.dtype);
  if (info.config.normalize) store(buf, p.normalizer_offset, normalizer.data(), info.config.key_dim, DType::f32);
  store(buf, p.lambda_offset, lambda.data(), info.rank, DType::f32);
  seal(buf);
  return buf;
}

int64_t declared_memory_size(std::span<const std::byte> header, const std::string& source) {
  return kMemoryHeaderBytes + read_header(header, source).payload_bytes;
}

MemoryView parse_memory(std::span<const std::byte> bytes, std::shared_ptr<const void> keepalive,
                        const std::string& source, bool verify_checksum) {
  const MemoryInfo info = read_header(bytes, source);
  const int64_t total = kMemoryHeaderBytes + info.payload_bytes;
  if (static_cast<int64_t>(bytes.size()) < total)
    bad(source, "truncated: " + std::to_string(bytes.size()) + " bytes of the " + std::to_string(total) + " declared");
  if (static_cast<int64_t>(bytes.size()) > total)
    bad(source, std::to_string(bytes.size() - static_cast<size_t>(total)) + " unexpected bytes after the memory");
  if (reinterpret_cast<uintptr_t>(bytes.data()) % 4 != 0) bad(source, "buffer is not 4-byte aligned");
  const auto payload = bytes.subspan(kMemoryHeaderBytes);
  if (verify_checksum &&
      get<uint64_t>(bytes, kChecksumOffset) != checksum(bytes.first(kMemoryHeaderBytes), payload))
    bad(source, "checksum mismatch: the file is corrupted");
  const PayloadLayout p = payload_layout(info);
  const auto* base = payload.data();
  auto f32_at = [&](int64_t off) { return off < 0 ? nullptr : reinterpret_cast<const float*>(base + off); };
  return MemoryView(info, base, f32_at(p.normalizer_offset), f32_at(p.lambda_offset), std::move(keepalive));
}

MemoryView view_of_bytes(std::vector<std::byte> bytes, const std::string& source) {
  // A 64-byte aligned copy, as a file mapping is: vector storage is only 16-byte aligned, and
  // rows straddling cache lines slow single lookups by a fifth.
  constexpr std::align_val_t kAlign{64};
  const size_t n = bytes.size();
  std::shared_ptr<std::byte> owner(static_cast<std::byte*>(::operator new(std::max<size_t>(n, 1), kAlign)),
                                   [kAlign](std::byte* p) { ::operator delete(p, kAlign); });
  if (n) std::memcpy(owner.get(), bytes.data(), n);
  return parse_memory(std::span<const std::byte>(owner.get(), n), owner, source);
}

void save_memory(const Memory& memory, const std::string& path) { detail::write_file_atomic(path, serialize(memory)); }

MemoryView open_memory(const std::string& path) {
  detail::MappedFile file = detail::map_file(path);
  return parse_memory(file.bytes, file.owner, path);
}

}  // namespace linattn
