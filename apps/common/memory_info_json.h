// A stored memory's description as JSON, the same fields wherever linattn's programs print it
// (`linattn info --json`, the lookup service's memory info).
#pragma once

#include <nlohmann/json.hpp>

#include "linattn/memory/memory.h"
#include "linattn/memory/memory_file.h"

namespace linattn::apps {

inline nlohmann::json memory_info_json(const MemoryInfo& i) {
  return {{"key_dim", i.config.key_dim},
          {"value_dim", i.config.value_dim},
          {"dtype", to_string(i.config.dtype)},
          {"layout", to_string(i.layout)},
          {"feature_map", to_string(i.config.feature_map)},
          {"normalize", i.config.normalize},
          {"gated", i.config.gated},
          {"symmetric", i.config.symmetric},
          {"kind", to_string(i.config.kind)},
          {"rank", i.rank},
          {"compression_error", i.compression_error},
          {"tokens", i.tokens},
          {"bytes", kMemoryHeaderBytes + i.payload_bytes}};
}

}  // namespace linattn::apps
