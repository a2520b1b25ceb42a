// Reading the reader's text inputs (bAbI files, CNN .question files, stories): one place that
// refuses what is not a text file, with the path in the message.
#pragma once

#include <string>

namespace linattn::reader {

// The whole content of `path`. FormatError for a directory, a device or socket (a FIFO is read
// as a stream), a file that cannot be opened or read, or one over `max_bytes`.
std::string read_text_file(const std::string& path, size_t max_bytes = size_t{1} << 30);

}  // namespace linattn::reader
