// A fresh directory under the system's temporary directory, removed with everything in it when
// the object goes: one per test that writes a cold tier (a cache locks its directory, and tests
// may run in parallel).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>

#include <stdlib.h>

namespace goldylox_test {

// Runs fn in a child process and returns its exit status (fn returns the code; a signal that
// ends the child is 128 + its number).
template <class Fn>
int in_child(Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A fresh directory under the system's temporary directory, removed with everything in it when
// the object goes.
class temp_dir {
 public:
  explicit temp_dir(const char* prefix = "goldylox") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category());
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A directory inside `parent` that only root could write to (mode 0555; `parent` is opened up
// so that another user can reach it).
inline std::string read_only_dir(const temp_dir& parent) {
  const std::string ro = parent.path() + "/ro";
  std::filesystem::create_directory(ro);
  ::chmod(parent.path().c_str(), 0755);
  ::chmod(ro.c_str(), 0555);
  return ro;
}

// In a child process: gives up root (which ignores permission bits) for an unprivileged user.
inline bool drop_root() {
  return ::geteuid() != 0 || (::setgid(65534) == 0 && ::setuid(65534) == 0);
}

// The threads of this process (/proc/self/task lists them). A joined thread may linger there for
// a moment after it woke its joiner, so the count is read until it holds still.
inline std::size_t process_threads() {
  const auto count = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      ++n;
    }
    return n;
  };
  std::size_t n = count();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::size_t again = count();
    if (again == n) break;
    n = again;
  }
  return n;
}

// A test clock for a cache's ticker(): time moves only when the test says so (copies share it).
struct manual_ticker {
  std::shared_ptr<std::atomic<std::int64_t>> ns = std::make_shared<std::atomic<std::int64_t>>(0);
  std::chrono::nanoseconds operator()() const { return std::chrono::nanoseconds(ns->load()); }
  void advance(std::chrono::nanoseconds d) const { ns->fetch_add(d.count()); }
};

// Keys and values of the i-th entry for tests typed over the hot table's slot kinds: packed
// slots (trivially copyable key and value) and node slots (strings, with values long enough to
// live on the heap) take different read and write paths.
template <class K, class V>
struct kv {
  using key = K;
  using value = V;
  static K k(int i) {
    if constexpr (std::is_same_v<K, std::string>) {
      return "key-" + std::to_string(i);
    } else {
      return static_cast<K>(i);
    }
  }
  static V v(int i) {
    if constexpr (std::is_same_v<V, std::string>) {
      return "a value long enough to live on the heap " + std::to_string(i);
    } else {
      return static_cast<V>(i * 10 + 1);
    }
  }
};

}  // namespace goldylox_test
