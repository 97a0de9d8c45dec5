// A fresh directory under the system's temporary directory, removed with everything in it when
// the object goes: one per test that writes a cold tier (a cache locks its directory, and tests
// may run in parallel).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

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

}  // namespace goldylox_test
