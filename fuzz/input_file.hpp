// What the libFuzzer harnesses share: the file a reader is handed, and the way
// a harness reports a broken promise.
//
// The file lives in a directory of its own per process ($TMPDIR/<harness>.<pid>:
// libFuzzer's -fork and -jobs children never share one), removed at a normal
// exit; a process that crashed leaves its directory, which the next one of the
// same harness removes. Each input replaces the file by a rename, so a reader
// never sees the previous input's inode (libhdf5 recognises an open file by
// its inode).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace annulus::fuzz {

/// Ends the run as a finding: libFuzzer saves the input and prints the stack.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "annulus fuzz finding: %s\n", what.c_str());
  std::abort();
}

class input_file {
 public:
  input_file(const std::string& harness, const std::string& file_name)
      : dir_(dir_parent() / (harness + "." + std::to_string(::getpid()))),
        path_(dir_ / file_name) {
    remove_dead(harness);
    std::filesystem::create_directories(dir_);
  }
  ~input_file() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  input_file(const input_file&) = delete;
  input_file& operator=(const input_file&) = delete;

  /// This process's directory; the harness may keep other files there.
  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& path() const { return path_; }

  /// Makes path() hold exactly these bytes.
  void write(const std::uint8_t* data, std::size_t size) const {
    std::filesystem::path part = path_;
    part += ".part";
    {
      std::ofstream out(part, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
      out.close();
      if (!out) finding("the harness cannot write " + part.string());
    }
    std::error_code ec;
    std::filesystem::rename(part, path_, ec);
    if (ec) finding("the harness cannot rename " + part.string() + ": " + ec.message());
  }

 private:
  // Directories of this harness whose process no longer exists.
  static void remove_dead(const std::string& harness) {
    std::error_code ec;
    std::filesystem::directory_iterator it(dir_parent(), ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(harness + ".", 0) != 0) continue;
      const std::string pid = name.substr(harness.size() + 1);
      if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos)
        continue;
      std::error_code ignored;
      if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH)
        std::filesystem::remove_all(it->path(), ignored);
    }
  }
  static std::filesystem::path dir_parent() { return std::filesystem::temp_directory_path(); }

  std::filesystem::path dir_, path_;
};

}  // namespace annulus::fuzz
