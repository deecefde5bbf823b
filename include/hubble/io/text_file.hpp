#pragma once
// write_text_atomically(path, text): a small text file (CSV, JSON, JSONL) written to a temporary
// file beside `path` and renamed over it, so a reader, or a run killed at any moment, sees the
// old file or the new one, never half of one. Errors name the file.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "hubble/core/error.hpp"

namespace hubble::io {

inline void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    HUBBLE_CHECK(f.good(), path, ": cannot create file (is the folder writable?)");
    f << text;
    f.flush();
    HUBBLE_CHECK(f.good(), path, ": cannot write file (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    ::hubble::detail::fail(path, ": cannot move the finished file into place");
  }
}

}  // namespace hubble::io
