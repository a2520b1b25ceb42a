#include "stored_memory.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "linattn/core/error.h"
#include "linattn/memory/memory_file.h"

namespace linattn::redis {

namespace {
Allocator g_allocator{std::malloc, std::free};
}  // namespace

void set_allocator(Allocator a) { g_allocator = a; }

namespace {

// `bytes` bytes from the allocator, 64-byte aligned as a file mapping is (rows straddling cache
// lines slow lookups). The allocator promises 16: an exact request usually comes back aligned
// (its size classes are multiples of 64 here); otherwise 63 bytes more are asked for.
std::shared_ptr<std::byte> allocate_aligned(size_t bytes, size_t& allocated) {
  constexpr uintptr_t kAlign = 64;
  const Allocator a = g_allocator;
  void* raw = a.allocate(std::max<size_t>(bytes, 1));
  allocated = std::max<size_t>(bytes, 1);
  if (raw && reinterpret_cast<uintptr_t>(raw) % kAlign != 0) {
    a.release(raw);
    allocated = bytes + kAlign - 1;
    raw = a.allocate(allocated);
  }
  if (!raw) throw std::bad_alloc();
  auto* aligned = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(raw) + kAlign - 1) & ~(kAlign - 1));
  return {aligned, [raw, release = a.release](std::byte*) { release(raw); }};
}

}  // namespace

StoredMemory StoredMemory::of_bytes(std::span<const std::byte> bytes, const std::string& source) {
  // Validated in a contiguous copy (the input may sit at any address; a vector's storage is
  // aligned enough for the parser), then split.
  const std::vector<std::byte> copy(bytes.begin(), bytes.end());
  const MemoryView whole = parse_memory(copy, nullptr, source);
  const std::byte* base = copy.data();
  const MemoryConfig& c = whole.info().config;
  if (c.key_dim > kMaxWidth || c.value_dim > kMaxWidth)
    throw FormatError(source + ": widths " + std::to_string(c.key_dim) + " x " + std::to_string(c.value_dim) +
                      " are over the module's limit of " + std::to_string(kMaxWidth));
  StoredMemory s;
  std::memcpy(s.header_.data(), base, kMemoryHeaderBytes);
  s.body_size_ = bytes.size() - kMemoryHeaderBytes;
  s.body_ = allocate_aligned(s.body_size_, s.body_allocated_);
  std::memcpy(s.body_.get(), base + kMemoryHeaderBytes, s.body_size_);
  // The same sections, at the same offsets past the header.
  auto moved = [&](const void* p) -> const std::byte* {
    return p ? s.body_.get() + (static_cast<const std::byte*>(p) - base - kMemoryHeaderBytes) : nullptr;
  };
  s.view_ = MemoryView(whole.info(), moved(whole.state_data()),
                       reinterpret_cast<const float*>(moved(whole.normalizer_data())),
                       reinterpret_cast<const float*>(moved(whole.lambda_data())), s.body_);
  return s;
}

std::vector<std::byte> StoredMemory::bytes() const {
  std::vector<std::byte> out(size());
  std::memcpy(out.data(), header_.data(), kMemoryHeaderBytes);
  if (body_size_) std::memcpy(out.data() + kMemoryHeaderBytes, body_.get(), body_size_);
  return out;
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
