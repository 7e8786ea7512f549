// Files for saved indexes, on POSIX systems: a read-only memory mapping
// (load and view read through it) and an atomic writer (save writes through
// it). Both throw io_error naming the path and the system's reason.
//
//   mapped_file f(path);          // the whole file, read-only; f.bytes()
//   atomic_file out(path);        // a temporary file beside `path`
//   out.write(bytes); ...
//   out.commit();                 // fsync, rename over `path`, fsync the directory
//   read_stream(in);              // the rest of a std::istream, 64-byte aligned
//
// An atomic_file destroyed before commit() (an exception mid-save) removes
// its temporary file: the path holds the old file or nothing, never half of
// a new one. Many processes may map one file: the page cache holds it once.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <istream>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/sizes.hpp"

namespace annulus {

namespace file_detail {
[[noreturn]] inline void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw io_error(what + " " + path.string() + ": " + std::strerror(err));
}
}  // namespace file_detail

/// A whole file mapped read-only. Move-only; unmapped by the destructor.
class mapped_file {
 public:
  /// Maps `path`. Throws io_error (missing, unreadable, a directory).
  explicit mapped_file(const std::filesystem::path& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) file_detail::fail("cannot open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      file_detail::fail("cannot stat", path, err);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw io_error("not a regular file: " + path.string());
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ != 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        file_detail::fail("cannot map", path, err);
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file
  }
  mapped_file(mapped_file&& o) noexcept
      : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() { unmap(); }

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

  /// Tells the kernel the whole file will be read soon (load: one sequential
  /// pass), or that pages will be read at random (view). Hints only.
  void expect_sequential() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_SEQUENTIAL | MADV_WILLNEED);
  }
  void expect_random() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_RANDOM);
  }

 private:
  void unmap() noexcept {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
  }
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// The rest of `in`, read into 64-byte aligned memory (so sections of
/// floats can be read in place). A seekable stream is measured first and
/// read in one allocation; another grows as bytes arrive, so memory never
/// runs ahead of what the stream held. Throws io_error if the stream fails
/// before its end, capacity_error past sizes::max_allocation_bytes.
inline std::vector<std::byte, aligned_allocator<std::byte>> read_stream(std::istream& in) {
  std::vector<std::byte, aligned_allocator<std::byte>> out;
  const auto start = in.tellg();
  if (start != std::istream::pos_type(-1) && in.seekg(0, std::ios::end)) {
    const auto end = in.tellg();
    in.seekg(start);
    if (end != std::istream::pos_type(-1) && end >= start && in) {
      out.resize(sizes::bytes(static_cast<std::size_t>(end - start), 1, "read_stream"));
      in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
      if (static_cast<std::size_t>(in.gcount()) != out.size())
        throw io_error("the stream ended after " + std::to_string(in.gcount()) + " of its " +
                       std::to_string(out.size()) + " bytes");
      return out;
    }
  }
  in.clear();
  constexpr std::size_t chunk = std::size_t{1} << 20;
  while (true) {
    const std::size_t have = out.size();
    out.resize(have + chunk);
    in.read(reinterpret_cast<char*>(out.data() + have), static_cast<std::streamsize>(chunk));
    out.resize(have + static_cast<std::size_t>(in.gcount()));
    if (in.eof()) break;
    if (!in) throw io_error("reading the stream failed after " + std::to_string(out.size()) + " bytes");
    sizes::bytes(out.size(), 1, "read_stream");
  }
  return out;
}

/// Writes a file so that it appears at its path whole or not at all.
class atomic_file {
 public:
  /// Creates a temporary file in the directory of `path` (which must exist).
  /// Throws io_error.
  explicit atomic_file(std::filesystem::path path) : path_(std::move(path)) {
    const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "." + string.
    std::string base = ".";
    base += path_.filename().string();
    base += ".tmp-XXXXXX";
    const std::string name = (dir / base).string();
    std::vector<char> buffer(name.begin(), name.end());
    buffer.push_back('\0');
    fd_ = ::mkstemp(buffer.data());
    if (fd_ < 0) file_detail::fail("cannot create a temporary file for", path_, errno);
    temp_ = buffer.data();
    buffer_.reserve(buffer_bytes);
  }
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;
  ~atomic_file() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(temp_.c_str());
    }
  }

  /// Appends bytes. Throws io_error (disk full, ...).
  void write(std::span<const std::byte> bytes) {
    if (buffer_.size() + bytes.size() > buffer_bytes) flush();
    if (bytes.size() >= buffer_bytes) {
      write_all(bytes);
    } else {
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }
  }

  /// Flushes, fsyncs, renames the file over the path and fsyncs the
  /// directory, so the new file survives a crash. Throws io_error; then the
  /// path is as it was.
  void commit() {
    flush();
    if (::fsync(fd_) != 0) file_detail::fail("cannot sync", temp_, errno);
    // mkstemp made the file 0600; a saved index is as readable as any file the user makes.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);
    if (::close(fd_) != 0) {
      fd_ = -1;
      const int err = errno;
      ::unlink(temp_.c_str());
      file_detail::fail("cannot close", temp_, err);
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(temp_.c_str());
      file_detail::fail("cannot rename the temporary file over", path_, err);
    }
    const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // the rename is durable once the directory is synced
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  static constexpr std::size_t buffer_bytes = std::size_t{1} << 20;

  void flush() {
    write_all(buffer_);
    buffer_.clear();
  }
  void write_all(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), std::min<std::size_t>(bytes.size(), std::size_t{1} << 30));
      if (n < 0) {
        if (errno == EINTR) continue;
        file_detail::fail("cannot write", temp_, errno);
      }
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
  }

  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
};

}  // namespace annulus
