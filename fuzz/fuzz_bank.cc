// libFuzzer target: the bank loader, through a real file (banks are mapped from disk).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "linattn/linattn.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/linattn_fuzz_bank_" + std::to_string(::getpid()) + ".lamb";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  for (bool verify : {true, false}) {
    try {
      const linattn::Bank bank = linattn::Bank::open(path, verify);
      if (bank.size() == 0 || bank.key_dim() > 1024) continue;
      std::vector<float> q(static_cast<size_t>(2 * bank.key_dim()), 0.5f);
      std::vector<float> out(static_cast<size_t>(bank.size() * 2 * bank.value_dim()));
      bank.lookup(linattn::CView2::contiguous(q.data(), {2, bank.key_dim()}),
                  linattn::View3::contiguous(out.data(), {bank.size(), 2, bank.value_dim()}));
    } catch (const linattn::Error&) {
    }
  }
  return 0;
}
