// The exceptions linattn throws. Every message names the operation and the offending argument.
#pragma once

#include <stdexcept>
#include <string>

namespace linattn {

// Base of every linattn error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed an argument that cannot be used (shape, size, option, value).
class ArgumentError : public Error {
 public:
  ArgumentError(std::string op, std::string argument, const std::string& problem)
      : Error(op + ": argument '" + argument + "': " + problem),
        op_(std::move(op)),
        argument_(std::move(argument)) {}
  const std::string& op() const noexcept { return op_; }
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string op_;
  std::string argument_;
};

// A file or stream could not be read or written, or its contents are not valid.
class FormatError : public Error {
 public:
  using Error::Error;
};

}  // namespace linattn
