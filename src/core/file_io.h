// File primitives (private; linattn/core/file_io.h is the public part): atomic replacement, exclusive creation, positioned
// writes, fsync and read-only mappings. Every write, truncate, fsync, rename and link of the
// memory layer's files goes through here, so that a test can stop any of them as a crash would
// (set_fault_hook).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace linattn::detail {

// Replaces `path` with `bytes`: temporary file in the same directory, fsync, rename, fsync dir.
void write_file_atomic(const std::string& path, std::span<const std::byte> bytes);

// Creates `path` holding `bytes`, failing with FormatError "... already exists" if it exists:
// temporary file, fsync, link(2) to the name (atomic and exclusive: no existing file is ever
// replaced, however many processes race), unlink the temporary, fsync dir.
void write_file_exclusive(const std::string& path, std::span<const std::byte> bytes);

void pwrite_all(int fd, std::span<const std::byte> bytes, int64_t offset, const std::string& path);
void fsync_file(int fd, const std::string& path);
void truncate_file(int fd, int64_t size, const std::string& path);

// A read-only mapping of a whole regular file, unmapped when the last owner lets go.
struct MappedFile {
  std::shared_ptr<const void> owner;  // keeps the mapping alive
  std::span<const std::byte> bytes;
};
// `random_access`: the pages will be read in no particular order (a bank's memories), so the
// kernel neither reads ahead nor maps the cached pages around each fault: the process's
// resident memory then grows with the pages it reads, not with the file.
MappedFile map_file(const std::string& path, bool random_access = false);

// errno as text, with the operation and path: "cannot open 'x.lam': No such file or directory".
std::string system_error_text(const std::string& what, const std::string& path);

// For crash-consistency tests: called before every write, truncate, fsync, rename, link and
// unlink above with the operation ("write", "truncate", "fsync", "rename", "link",
// "fsync-dir") and its path. A hook that throws stops the operation there, before it happens,
// as a crash at that point would. Process-wide; null (the default) turns it off.
using FaultHook = void (*)(const char* operation, const std::string& path);
void set_fault_hook(FaultHook hook);

}  // namespace linattn::detail
