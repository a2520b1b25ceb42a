// libFuzzer target: the .lam memory loader. Arbitrary bytes must give a MemoryView or a
// FormatError, never a crash; whatever parses must answer a lookup.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "linattn/linattn.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A 64-byte-aligned copy, as a file mapping would be.
  auto owner = std::make_shared<std::vector<std::byte>>(size);
  if (size) std::memcpy(owner->data(), data, size);
  // Twice: with the checksum (the real path), and without it so that the fuzzer reaches the
  // payload readers behind a header it managed to make valid.
  for (bool verify : {true, false}) {
    try {
      const linattn::MemoryView m = linattn::parse_memory(*owner, owner, "fuzz", verify);
      const int64_t dk = m.info().config.key_dim;
      if (dk > 4096) continue;  // keep each input fast
      std::vector<float> q(static_cast<size_t>(dk), 0.5f);
      for (int rows : {1, 5}) {
        std::vector<float> qs(static_cast<size_t>(rows * dk), 0.25f);
        std::vector<float> out(static_cast<size_t>(rows * m.info().config.value_dim));
        m.lookup(linattn::CView2::contiguous(qs.data(), {rows, dk}),
                 linattn::View2::contiguous(out.data(), {rows, m.info().config.value_dim}));
      }
      if (m.info().layout != linattn::Layout::low_rank) (void)m.to_memory();
    } catch (const linattn::Error&) {
    }
  }
  return 0;
}
