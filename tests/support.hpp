#pragma once
// Helpers shared by the test files: scratch folders that remove themselves, and the message of
// the hubble::Error a call throws.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "hubble/core/error.hpp"

namespace test_support {

// A fresh folder under the system's temp directory, removed with its contents on destruction.
// (CTest runs every test case in its own process, so a folder per process is not enough: each
// case must clean up after itself.)
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("hubble_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The message of the hubble::Error that f() throws, or "(no hubble::Error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const hubble::Error& e) {
    return e.what();
  }
  return "(no hubble::Error)";
}

}  // namespace test_support
