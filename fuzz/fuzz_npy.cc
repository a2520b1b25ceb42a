// libFuzzer target: the .npy reader of the command-line tool.
#include <cstddef>
#include <cstdint>

#include "linattn/core/error.h"
#include "npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m = linattn::npy::parse({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    (void)m;
  } catch (const linattn::Error&) {
  }
  return 0;
}
