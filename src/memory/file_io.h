// File primitives for the memory layer: atomic replacement and read-only mappings.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace linattn::detail {

// Replaces `path` with `bytes`: temporary file in the same directory, fsync, rename, fsync dir.
void write_file_atomic(const std::string& path, std::span<const std::byte> bytes);

// A read-only mapping of a whole file, unmapped when the last owner lets go.
struct MappedFile {
  std::shared_ptr<const void> owner;  // keeps the mapping alive
  std::span<const std::byte> bytes;
};
MappedFile map_file(const std::string& path);

// errno as text, with the operation and path: "cannot open 'x.lam': No such file or directory".
std::string system_error_text(const std::string& what, const std::string& path);

}  // namespace linattn::detail
