// Writing files so that a crash never leaves half of one.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace linattn {

// Replaces `path` with `bytes` atomically: a temporary file beside it, fsync, rename, fsync of
// the directory. A crash leaves either the old file or the new one, never a half-written one.
// Throws FormatError naming the path on any failure.
void write_file_atomic(const std::string& path, std::span<const std::byte> bytes);

}  // namespace linattn
