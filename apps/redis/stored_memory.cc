#include "stored_memory.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "linattn/core/error.h"
#include "linattn/memory/memory_file.h"

namespace linattn::redis {

StoredMemory StoredMemory::of_bytes(std::span<const std::byte> bytes, const std::string& source) {
  // 64-byte aligned, as a file mapping is (rows straddling cache lines slow lookups).
  constexpr std::align_val_t kAlign{64};
  StoredMemory s;
  s.size_ = bytes.size();
  s.buffer_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(::operator new(std::max<size_t>(s.size_, 1), kAlign)),
                                         [kAlign](std::byte* p) { ::operator delete(p, kAlign); });
  if (s.size_) std::memcpy(s.buffer_.get(), bytes.data(), s.size_);
  s.view_ = parse_memory({s.buffer_.get(), s.size_}, s.buffer_, source);
  const MemoryConfig& c = s.view_.info().config;
  if (c.key_dim > kMaxWidth || c.value_dim > kMaxWidth)
    throw FormatError(source + ": widths " + std::to_string(c.key_dim) + " x " + std::to_string(c.value_dim) +
                      " are over the module's limit of " + std::to_string(kMaxWidth));
  return s;
}

StoredMemory StoredMemory::decode(std::span<const std::byte> bytes, const std::string& source) {
  return of_bytes(bytes, source);
}

StoredMemory StoredMemory::create(const MemoryConfig& config) {
  if (config.key_dim > kMaxWidth || config.value_dim > kMaxWidth)
    throw ArgumentError("LA.CREATE", "DK/DV", "at most " + std::to_string(kMaxWidth));
  const Memory m(config);
  const std::vector<std::byte> bytes = serialize(m);
  return of_bytes(bytes, "LA.CREATE");
}

Memory StoredMemory::editable() const {
  if (info().layout == Layout::low_rank)
    throw ArgumentError("linattn", "key", "a low-rank (compressed) memory is read-only");
  return view_.to_memory();
}

void StoredMemory::store(const Memory& m) {
  const std::vector<std::byte> bytes = serialize(m);
  *this = of_bytes(bytes, "memory");
}

void StoredMemory::write(CView2 keys, CView2 values, CView1 gates) {
  Memory m = editable();
  m.write(keys, values, gates);
  store(m);
}

void StoredMemory::merge(const StoredMemory& other) {
  Memory m = editable();
  m.merge(other.editable());
  store(m);
}

void StoredMemory::decay(float gamma) {
  Memory m = editable();
  m.decay(gamma);
  store(m);
}

}  // namespace linattn::redis
