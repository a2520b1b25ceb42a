#include "core/file_io.h"

#include "linattn/core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "linattn/core/error.h"

namespace linattn::detail {

std::string system_error_text(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

namespace {

std::atomic<FaultHook> fault_hook{nullptr};

void fault_point(const char* operation, const std::string& path) {
  if (const FaultHook hook = fault_hook.load(std::memory_order_relaxed)) hook(operation, path);
}

std::filesystem::path directory_of(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return dir.empty() ? "." : dir;
}

void fsync_directory(const std::filesystem::path& dir) {
  fault_point("fsync-dir", dir.string());
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// A complete temporary file beside `path` (written, fsynced, mode 0644); returns its name.
std::string write_temporary(const std::string& path, std::span<const std::byte> bytes) {
  const std::filesystem::path dir = directory_of(path);
  std::string tmp = (dir / ("." + std::filesystem::path(path).filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw FormatError(system_error_text("cannot create a temporary file in", dir.string()));
  try {
    pwrite_all(fd, bytes, 0, tmp);
    fsync_file(fd, tmp);
    if (::fchmod(fd, 0644) != 0) throw FormatError(system_error_text("cannot chmod", tmp));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  return tmp;
}

}  // namespace

void set_fault_hook(FaultHook hook) { fault_hook.store(hook); }

void pwrite_all(int fd, std::span<const std::byte> bytes, int64_t offset, const std::string& path) {
  fault_point("write", path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(offset) + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FormatError(system_error_text("cannot write", path));
    }
    done += static_cast<size_t>(n);
  }
}

void fsync_file(int fd, const std::string& path) {
  fault_point("fsync", path);
  if (::fsync(fd) != 0) throw FormatError(system_error_text("cannot fsync", path));
}

void truncate_file(int fd, int64_t size, const std::string& path) {
  fault_point("truncate", path);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw FormatError(system_error_text("cannot truncate", path));
}

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  const std::string tmp = write_temporary(path, bytes);
  try {
    fault_point("rename", path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string text = system_error_text("cannot rename a temporary file to", path);
    ::unlink(tmp.c_str());
    throw FormatError(text);
  }
  // The rename itself must reach the disk, or a crash could bring back the old file.
  fsync_directory(directory_of(path));
}

void write_file_exclusive(const std::string& path, std::span<const std::byte> bytes) {
  const std::string tmp = write_temporary(path, bytes);
  struct Unlink {
    std::string tmp;
    ~Unlink() { ::unlink(tmp.c_str()); }
  } unlink_tmp{tmp};
  fault_point("link", path);
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) throw FormatError("'" + path + "' already exists");
    throw FormatError(system_error_text("cannot create", path));
  }
  fsync_directory(directory_of(path));
}

MappedFile map_file(const std::string& path, bool random_access) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(system_error_text("cannot open", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string text = system_error_text("cannot stat", path);
    ::close(fd);
    throw FormatError(text);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError("'" + path + "' is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return {std::make_shared<int>(0), {}};
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) throw FormatError(system_error_text("cannot map", path));
  if (random_access) ::madvise(p, size, MADV_RANDOM);  // advice only: a failure changes nothing
  std::shared_ptr<const void> owner(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  return {owner, std::span<const std::byte>(static_cast<const std::byte*>(p), size)};
}

}  // namespace linattn::detail

namespace linattn {

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  detail::write_file_atomic(path, bytes);
}

}  // namespace linattn
