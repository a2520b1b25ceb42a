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
    linattn::reader::CnnExample ex = linattn::reader::parse_cnn_question(text, "fuzz");
    // Re-shuffled, the example keeps its shape: the answer stays one of its candidates.
    const size_t story = ex.story.size(), candidates = ex.candidates.size();
    linattn::reader::shuffle_entities(ex, linattn::reader::entity_count(ex) + 3, size);
    bool found = false;
    for (const auto& c : ex.candidates) found |= c == ex.answer;
    if (!found || ex.story.size() != story || ex.candidates.size() != candidates) __builtin_trap();
  } catch (const linattn::Error&) {
  }
  return 0;
}
