#pragma once
// Helpers shared by the test files: scratch folders that remove themselves, and the message of
// the hubble::Error a call throws.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

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

// The bytes of a file ("" when it cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// How a forked child ended (see in_child).
struct ChildOutcome {
  bool exited = false;     // returned normally (no signal, no abort)
  int exit_code = -1;      // 0: f() threw a hubble::Error, 1: f() returned, 2: another exception
  int signal = 0;          // the signal that killed it, if any
  std::string message;     // the Error's message
};

// Runs f() in a forked child whose files may not grow past `file_size_limit` bytes
// (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes past it fail with EFBIG as on a full disk;
// 0 = no limit). The child then runs `finish` (e.g. H5close, the library teardown an exit
// handler would run) and _exit()s, so no static destructor of this process runs twice.
template <class F, class Finish>
ChildOutcome in_child(std::uint64_t file_size_limit, F&& f, Finish&& finish, unsigned timeout_s = 60) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(timeout_s);  // a hang ends as SIGALRM
    ::signal(SIGXFSZ, SIG_IGN);
    if (file_size_limit > 0) {
      const rlimit limit{rlim_t(file_size_limit), rlim_t(file_size_limit)};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    int code = 1;
    std::string message;
    try {
      f();
    } catch (const hubble::Error& e) {
      code = 0;
      message = e.what();
    } catch (const std::exception& e) {
      code = 2;
      message = e.what();
    }
    finish();
    for (std::size_t done = 0; done < message.size();) {
      const ssize_t w = ::write(fds[1], message.data() + done, message.size() - done);
      if (w <= 0) break;
      done += std::size_t(w);
    }
    ::close(fds[1]);
    ::_exit(code);
  }
  ::close(fds[1]);
  ChildOutcome out;
  char buf[4096];
  for (ssize_t r; (r = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.message.append(buf, std::size_t(r));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  out.exited = WIFEXITED(status);
  out.exit_code = out.exited ? WEXITSTATUS(status) : -1;
  out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return out;
}

// The names of the files in a folder, sorted.
inline std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace test_support
