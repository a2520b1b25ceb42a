#include "text_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "linattn/core/error.h"

namespace linattn::reader {

std::string read_text_file(const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw FormatError("cannot open '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw FormatError("'" + path + "' is a directory, not a text file");
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) throw FormatError("'" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("cannot open '" + path + "'");
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes)
      throw FormatError("'" + path + "' is larger than " + std::to_string(max_bytes >> 20) + " MiB");
  }
  if (in.bad()) throw FormatError("cannot read '" + path + "'");
  return text;
}

}  // namespace linattn::reader
