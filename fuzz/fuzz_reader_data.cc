// libFuzzer target: the reader's text loaders (bAbI stories, CNN ".question" files).
#include <cstddef>
#include <cstdint>
#include <string>

#include "babi.h"
#include "cnn.h"
#include "linattn/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)linattn::reader::parse_babi(text, "fuzz");
  } catch (const linattn::Error&) {
  }
  try {
    (void)linattn::reader::parse_cnn_question(text, "fuzz");
  } catch (const linattn::Error&) {
  }
  return 0;
}
