#pragma once
// write_text_atomically(path, text): a small text file (CSV, JSON, JSONL) written to a temporary
// file beside `path`, synced and renamed over it (io/atomic_file.hpp), so a reader, a run killed
// at any moment or a full disk leaves the old file or the new one, never half of one. Errors
// name the file and the cause.
#include <string>

#include "hubble/io/atomic_file.hpp"

namespace hubble::io {

inline void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

}  // namespace hubble::io
