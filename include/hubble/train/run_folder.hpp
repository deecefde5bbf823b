#pragma once
// The output folder of a training run, and how a run keeps its state there:
//
//   run.lock        locked (flock) by the process using the folder, for as long as it uses it
//   last.h5         checkpoint of the last finished epoch: what a resumed run continues from
//   best.h5         checkpoint of the best epoch so far
//   metrics.jsonl   the history, one JSON object per epoch, rewritten from the checkpoint's own
//                   history, so it always agrees with last.h5
//
//   train::RunFolder folder("runs/x");                 // creates, locks, removes stale temporaries
//   train::RunState s = folder.resume(net, adam, expected_settings, epochs);   // or:
//   folder.refuse_existing_run();
//   folder.save_epoch(net, adam, data, history, best_epoch, best_value);      // after every epoch
//
// Every file is written atomically (a temporary beside it, renamed over it), best.h5 before
// last.h5, so a run killed at any moment leaves the previous complete version of each.
//
// The lock: a second process opening the same folder fails at once with an Error naming the
// folder (and the holder's pid), instead of both writing checkpoints into it. flock locks die
// with their process, so a run killed with kill -9 leaves a run.lock file that blocks nobody.
// Within one process a folder may be locked several times (the program holds it for the whole
// run, the trainer for fit()); it is released when the last RunLock on it goes.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/optim/optimizer_state.hpp"
#include "hubble/train/history.hpp"

namespace hubble::train {

inline constexpr const char* run_lock_file = "run.lock";

class RunLock {
 public:
  RunLock() = default;
  // Locks existing folder `folder` for this process, or throws an Error naming it.
  explicit RunLock(const std::string& folder) {
    std::error_code ec;
    const std::filesystem::path canonical = std::filesystem::canonical(folder, ec);
    HUBBLE_CHECK(!ec, folder, ": cannot use this folder (", ec.message(), ")");
    const std::string key = canonical.string();
    std::lock_guard<std::mutex> guard(registry_mutex());
    if (const auto it = registry().find(key); it != registry().end()) {
      ++it->second.count;
      key_ = key;
      return;
    }
    const std::string file = (canonical / run_lock_file).string();
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    HUBBLE_CHECK(fd >= 0, file, ": cannot create the run's lock file (", errno_text(), ")");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = read_holder(fd);
      ::close(fd);
      HUBBLE_CHECK(err != EWOULDBLOCK, folder, ": another training run",
                   holder.empty() ? std::string() : " (process " + holder + ")",
                   " is using this folder; wait for it to finish or choose another output folder");
      ::hubble::detail::fail(file, ": cannot lock (", std::error_code(err, std::generic_category()).message(), ")");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";  // for the message of a second run
    if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
    registry()[key] = {fd, 1};
    key_ = key;
  }
  RunLock(RunLock&& o) noexcept : key_(std::exchange(o.key_, {})) {}
  RunLock& operator=(RunLock&& o) noexcept {
    if (this != &o) {
      release();
      key_ = std::exchange(o.key_, {});
    }
    return *this;
  }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock() { release(); }

  bool held() const { return !key_.empty(); }

 private:
  struct Held {
    int fd = -1, count = 0;
  };
  static std::map<std::string, Held>& registry() {
    static std::map<std::string, Held> held;
    return held;
  }
  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::string errno_text() { return std::error_code(errno, std::generic_category()).message(); }
  static std::string read_holder(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
    return pid;
  }
  void release() {
    if (key_.empty()) return;
    std::lock_guard<std::mutex> guard(registry_mutex());
    const auto it = registry().find(key_);
    if (it != registry().end() && --it->second.count == 0) {
      ::close(it->second.fd);  // closing the only descriptor releases the flock
      registry().erase(it);
    }
    key_.clear();
  }
  std::string key_;
};

// A run's progress as its checkpoint records it, checked.
struct RunState {
  int epoch = 0;                      // finished epochs
  std::vector<EpochRecord> history;   // one record per finished epoch
  int best_epoch = 0;                 // 1-based; 0 when none
  double best_value = std::numeric_limits<double>::quiet_NaN();
  std::string threads;                // OpenMP threads the checkpoint was trained with ("" unknown)
};

// The progress stored in checkpoint data `d` read from `source`: every number that becomes an
// int is checked first (finite, whole, in range), and the history must hold `epoch` records.
inline RunState run_state_from(const CheckpointData& d, const std::string& source) {
  RunState s;
  s.epoch = checkpoint_whole_number(d.epoch, 0, std::numeric_limits<int>::max(), source, "the epoch count");
  s.history = history_from(d, source);
  HUBBLE_CHECK(int(s.history.size()) == s.epoch, source, ": history holds ", s.history.size(),
               " epochs but the checkpoint is at epoch ", s.epoch);
  s.best_epoch = checkpoint_whole_number(d.value("best_epoch", 0.0), 0, s.epoch, source, "training/best_epoch");
  s.best_value = d.value("best_value", std::numeric_limits<double>::quiet_NaN());
  s.threads = d.meta("train/threads");
  return s;
}

// "\n  key: checkpoint X, now Y" for every key of `expected` (a "train/..." fingerprint) whose
// value in `d` differs; empty when the settings agree.
inline std::string setting_differences(const CheckpointData& d, const std::map<std::string, std::string>& expected) {
  std::string lines;
  for (const auto& [key, value] : expected) {
    const std::string saved = d.meta(key, "(unset)");
    const std::string name = key.rfind("train/", 0) == 0 ? key.substr(6) : key;
    if (saved != value) lines += "\n  " + name + ": checkpoint " + saved + ", now " + value;
  }
  return lines;
}

class RunFolder {
 public:
  // Creates `dir` when missing, locks it for this object's lifetime and removes the temporaries
  // of a run killed while writing.
  explicit RunFolder(std::string dir) : dir_(std::move(dir)) {
    HUBBLE_CHECK(!dir_.empty(), "train: the output folder's name is empty");
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    HUBBLE_CHECK(!ec, dir_, ": cannot create the output folder (", ec.message(), ")");
    HUBBLE_CHECK(std::filesystem::is_directory(dir_, ec), dir_, ": exists but is not a folder");
    lock_ = RunLock(dir_);
    remove_stale_temporaries();  // only now: while another run held the folder they were its files
  }

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }
  std::string last_path() const { return path("last.h5"); }
  std::string best_path() const { return path("best.h5"); }
  bool holds_run() const { return std::filesystem::exists(last_path()); }

  void refuse_existing_run() const {
    HUBBLE_CHECK(!holds_run(), dir_, ": already holds a run (last.h5); resume it or choose another output folder");
  }

  // Loads last.h5 into `net` and `opt` after checking that it continues the run `expected`
  // describes (its "train/..." settings) with at most `epochs` epochs; on a refusal neither is
  // changed.
  template <class Net>
  RunState resume(Net& net, OptimizerState<typename Net::scalar>& opt, const std::map<std::string, std::string>& expected,
                  int epochs) const {
    const std::string last = last_path();
    HUBBLE_CHECK(holds_run(), last, ": nothing to resume (no checkpoint there)");
    const CheckpointData saved = read_checkpoint_data(last);
    const std::string differences = setting_differences(saved, expected);
    HUBBLE_CHECK(differences.empty(), last, ": cannot resume with different settings:", differences,
                 "\n(use the original settings, or start a new run in another folder)");
    RunState state = run_state_from(saved, last);
    HUBBLE_CHECK(state.epoch <= epochs, last, ": the run has already finished ", state.epoch,
                 " epochs, more than the ", epochs, " asked for (ask for ", state.epoch, " or more to continue it)");
    const CheckpointData loaded = load_checkpoint(last, net, &opt);
    HUBBLE_CHECK(loaded.epoch == saved.epoch, last, ": changed while it was read (epoch ", saved.epoch, ", then ",
                 loaded.epoch, ")");
    return state;
  }

  // Keeps finished epoch `d.epoch`: best.h5 when its history record says it is the best, then
  // last.h5, then metrics.jsonl. `d` carries the epoch, streams and metadata; the history and
  // the best epoch are added here.
  template <class Net>
  void save_epoch(Net& net, const OptimizerState<typename Net::scalar>& opt, CheckpointData d,
                  const std::vector<EpochRecord>& history, int best_epoch, double best_value) const {
    d.values["best_epoch"] = {double(best_epoch)};
    d.values["best_value"] = {best_value};
    store_history(history, d);
    if (!history.empty() && history.back().best) save_checkpoint(best_path(), net, &opt, d);
    save_checkpoint(last_path(), net, &opt, d);
    io::write_text_atomically(path("metrics.jsonl"), history_jsonl(history));
  }

 private:
  // A run killed while writing leaves "<name>.tmp<pid>" files; they are never valid files.
  void remove_stale_temporaries() const {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string name = entry.path().filename().string();
      for (const char* stem : {"last.h5.tmp", "best.h5.tmp", "metrics.jsonl.tmp"})
        if (name.rfind(stem, 0) == 0) std::filesystem::remove(entry.path(), ec);
    }
  }

  std::string dir_;
  RunLock lock_;
};

}  // namespace hubble::train
