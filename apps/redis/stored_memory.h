// The value of the Redis module's type: one memory in its stored form (the .lam bytes, viewed in
// place), with the changes the commands make. The 128-byte header lives in the object and the
// payload in an allocation of exactly its size: a power-of-two state plus the header would
// fall into the allocator's next size class, a quarter larger. Lookups read the stored form,
// so LA.LOOKUP answers exactly what `linattn lookup` answers from LA.EXPORT's bytes; changes go
// through an fp32 copy and are stored again (a bf16 memory is rounded to bf16 after each, as a
// bf16 file is). No Redis here: the fuzz target and the tests use it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <array>
#include <span>
#include <string>
#include <vector>

#include "linattn/memory/memory.h"
#include "linattn/memory/memory_file.h"

namespace linattn::redis {

// The largest key or value width LA.CREATE and LA.IMPORT take (a 4096 x 4096 f32 state is 64 MiB).
inline constexpr int64_t kMaxWidth = 4096;

// Where stored bytes are allocated. The module points this at Redis's allocator, so that
// used_memory, INFO and maxmemory (which refuses deny-oom commands past it) count the memories;
// alone (tests, fuzzing) it is the C heap. Set once, before any memory exists.
struct Allocator {
  void* (*allocate)(size_t bytes);
  void (*release)(void* p);
};
void set_allocator(Allocator a);

class StoredMemory {
 public:
  // An empty memory of `config` (ArgumentError for an unusable one, or widths over kMaxWidth).
  static StoredMemory create(const MemoryConfig& config);
  // Validates `bytes` as a .lam memory, checksum included (FormatError naming `source`).
  static StoredMemory decode(std::span<const std::byte> bytes, const std::string& source);

  const MemoryView& view() const { return view_; }
  const MemoryInfo& info() const { return view_.info(); }
  // The .lam bytes (a copy: header and payload are stored apart).
  std::vector<std::byte> bytes() const;
  size_t size() const { return kMemoryHeaderBytes + body_size_; }
  size_t memory_usage() const { return sizeof(*this) + body_allocated_; }

  // keys [T, dk]; values [T, dv] or empty (then the keys, unless symmetric); gates [T] or empty.
  void write(CView2 keys, CView2 values, CView1 gates);
  void merge(const StoredMemory& other);
  void decay(float gamma);

 private:
  static StoredMemory of_bytes(std::span<const std::byte> bytes, const std::string& source);
  void store(const Memory& m);
  Memory editable() const;

  std::array<std::byte, kMemoryHeaderBytes> header_{};
  std::shared_ptr<std::byte> body_;
  size_t body_size_ = 0, body_allocated_ = 0;
  MemoryView view_{MemoryInfo{}, nullptr, nullptr, nullptr, nullptr};
};

}  // namespace linattn::redis
