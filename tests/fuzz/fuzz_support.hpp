#pragma once
// What the fuzz targets share: the input written to a scratch file (the HDF5 readers take a
// path), and the rule that a hubble::Error is an accepted outcome while anything else (a crash,
// a sanitizer report, another exception escaping, a hang) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "hubble/core/error.hpp"

namespace hubble::fuzz {

// One file per process in /dev/shm (memory, so no disk traffic per input), rewritten for every
// input and removed at exit.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& tag) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    path_ = (dir / ("hubble_fuzz_" + tag + "_" + std::to_string(::getpid()) + ".h5")).string();
  }
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& write(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) {
      std::perror(path_.c_str());
      std::abort();  // the harness itself is broken: stop rather than report every input as fine
    }
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path_;
  }

 private:
  std::string path_;
};

// Runs f(); a hubble::Error is the expected answer to a bad input and is swallowed. Anything else
// propagates and ends the process: libFuzzer saves the input as a crash.
template <class F>
void accept_hubble_errors(F&& f) {
  try {
    f();
  } catch (const hubble::Error&) {
  }
}

// A broken invariant in what a reader returned (silent garbage): abort so libFuzzer keeps the input.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace hubble::fuzz
