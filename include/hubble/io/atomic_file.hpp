#pragma once
// Replacing a file atomically: the old file or the complete new one, never half of one, even
// when the disk fills up, a file-size limit is hit or the process is killed at any moment.
//
//   io::write_file_atomically("out.csv", text.data(), text.size());
//
//   io::AtomicFile f("data.h5");          // creates data.h5.tmp<pid> beside the target
//   some_library_writes(f.temp_path());   // or f.write(bytes, n): every write is checked
//   f.commit();                           // fsync the file, rename over data.h5, fsync the folder
//   // no commit() (an exception): the temporary file is removed, data.h5 is untouched
//
// Every system call is checked; a failure is a hubble::Error naming the target file and the
// cause as the system states it ("No space left on device", "File too large", ...).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "hubble/core/error.hpp"

namespace hubble::io {

namespace detail {
inline std::string errno_text(int err) { return std::strerror(err); }

// fsync of a folder, so that a rename inside it is durable.
inline int sync_folder(const std::string& target) {
  const std::filesystem::path p(target);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  // Some file systems cannot sync a folder (EINVAL); the rename is then as durable as they allow.
  return rc == EINVAL ? 0 : rc;
}
}  // namespace detail

class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    const std::string base = path_ + ".tmp" + std::to_string(::getpid());
    for (int attempt = 0; attempt < 100; ++attempt) {
      temp_ = attempt == 0 ? base : base + "." + std::to_string(counter.fetch_add(1));
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0)
      ::hubble::detail::fail(path_, ": cannot create the file (", detail::errno_text(errno),
                             "; is the folder there and writable?)");
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() { abandon(); }

  const std::string& path() const { return path_; }
  // The temporary file; a library may write it by name (it stays open here for the fsync).
  const std::string& temp_path() const { return temp_; }

  // Appends n bytes, looping over partial writes; a failure (EFBIG, ENOSPC, EIO) throws.
  void write(const void* data, std::size_t n) {
    HUBBLE_CHECK(fd_ >= 0, path_, ": write after the file was committed or abandoned");
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail_and_abandon("cannot write", w < 0 ? errno : EIO);
      p += w;
      n -= std::size_t(w);
    }
  }

  // Makes the written bytes durable and moves them over the target.
  void commit() {
    HUBBLE_CHECK(fd_ >= 0, path_, ": commit after the file was committed or abandoned");
    if (::fsync(fd_) != 0) fail_and_abandon("cannot flush the file to disk", errno);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail_and_abandon("cannot close the file", errno);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail_and_abandon("cannot move the finished file into place", errno);
    temp_.clear();
    if (const int err = detail::sync_folder(path_); err != 0)
      ::hubble::detail::fail(path_, ": the file was replaced but its folder cannot be synced to disk (",
                             detail::errno_text(err), ")");
  }

  // Closes and removes the temporary file (what the destructor does without commit()).
  void abandon() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!temp_.empty()) ::unlink(std::exchange(temp_, std::string()).c_str());
  }

 private:
  [[noreturn]] void fail_and_abandon(const char* what, int err) {
    abandon();
    ::hubble::detail::fail(path_, ": ", what, " (", detail::errno_text(err), ")");
  }
  std::string path_, temp_;
  int fd_ = -1;
};

// `size` bytes as the whole content of `path`, atomically.
inline void write_file_atomically(const std::string& path, const void* data, std::size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

// For writers that produce the file by name (HDF5): fill(temp_path) writes the temporary file
// and must throw on any failure; then it is synced and renamed over `path`.
template <class Fill>
void write_file_atomically_with(const std::string& path, Fill&& fill) {
  AtomicFile f(path);
  fill(f.temp_path());
  f.commit();
}

}  // namespace hubble::io
