#include "file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "linattn/core/error.h"

namespace linattn::detail {

std::string system_error_text(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

namespace {

void write_all(int fd, std::span<const std::byte> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FormatError(system_error_text("cannot write", path));
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  const std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw FormatError(system_error_text("cannot create a temporary file in", dir.string()));
  try {
    write_all(fd, bytes, tmp);
    if (::fsync(fd) != 0) throw FormatError(system_error_text("cannot fsync", tmp));
    if (::fchmod(fd, 0644) != 0) throw FormatError(system_error_text("cannot chmod", tmp));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string text = system_error_text("cannot rename a temporary file to", path);
    ::unlink(tmp.c_str());
    throw FormatError(text);
  }
  // The rename itself must reach the disk, or a crash could bring back the old file.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

MappedFile map_file(const std::string& path) {
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
  std::shared_ptr<const void> owner(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  return {owner, std::span<const std::byte>(static_cast<const std::byte*>(p), size)};
}

}  // namespace linattn::detail
