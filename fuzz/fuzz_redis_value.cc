// libFuzzer target: the Redis module's value decoder, what RDB loading, RESTORE, MIGRATE and
// LA.IMPORT hand their payload to (Redis checks its own envelope and checksum first; this is
// everything after).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "linattn/core/error.h"
#include "stored_memory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m = linattn::redis::StoredMemory::decode({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    // A decoded value answers and exports exactly what it decoded.
    const std::vector<std::byte> out = m.bytes();
    if (out.size() != size || std::memcmp(out.data(), data, size) != 0) __builtin_trap();
    const int64_t dk = m.info().config.key_dim, dv = m.info().config.value_dim;
    std::vector<float> q(static_cast<size_t>(dk), 0.5f), r(static_cast<size_t>(dv));
    m.view().lookup(linattn::CView2::contiguous(q.data(), {1, dk}), linattn::View2::contiguous(r.data(), {1, dv}));
  } catch (const linattn::Error&) {
  }
  return 0;
}
