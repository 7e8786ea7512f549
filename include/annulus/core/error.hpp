// Exception types thrown by annulus. Every public call validates its input at
// the boundary and throws one of these; a call that throws leaves the object it
// was called on as it was. Messages say what was expected and what came.
#pragma once

#include <stdexcept>
#include <string>

namespace annulus {

/// Base of every annulus exception (catch this to catch them all).
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A parameter or input value is out of range or malformed
/// (k = 0, k > size, NaN in a vector, a zero vector under cosine, ...).
class invalid_argument : public error {
 public:
  using error::error;
};

/// A vector or matrix has a different dimension than the index expects.
class dimension_mismatch : public error {
 public:
  using error::error;
};

/// A file is truncated, corrupt, foreign or from an unsupported format version.
class format_error : public error {
 public:
  using error::error;
};

/// The operating system refused a file operation (a missing file, a full
/// disk, no permission); the message names the path and the reason.
class io_error : public error {
 public:
  using error::error;
};

/// A change was asked of a read-only index (one served from a memory-mapped
/// file by view()).
class read_only_error : public error {
 public:
  using error::error;
};

/// A size limit would be exceeded (more vectors than 32-bit slots, ...).
class capacity_error : public error {
 public:
  using error::error;
};

}  // namespace annulus
