// The few POSIX file operations the cold tier needs, as RAII types and absl::Status results.
//
// Every failing system call becomes a status that names the operation, the path and strerror,
// with a code a caller can act on: a full disk (ENOSPC, EDQUOT, EFBIG) is kResourceExhausted,
// missing permissions (EACCES, EPERM, EROFS) kPermissionDenied, a missing path kNotFound, and a
// directory held by another open cache (flock) kFailedPrecondition. The errno itself rides along
// as a payload (errno_of), for the callers whose next step depends on more than the code. Nothing
// here throws.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The status's payload under this URL (an absl::Cord, which status.h brings: payloads are
// Cords) is the errno that caused it (decimal), so a caller can
// tell causes that share a code apart: ENOSPC (deleting files frees space) from EFBIG (a file
// size limit, which no deletion lifts).
inline constexpr std::string_view errno_payload_url = "goldylox/errno";

inline absl::Status errno_status(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  absl::Status st;
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      st = absl::ResourceExhaustedError(message);
      break;
    case EACCES:
    case EPERM:
    case EROFS:
      st = absl::PermissionDeniedError(message);
      break;
    case ENOENT:
    case ENOTDIR:
      st = absl::NotFoundError(message);
      break;
    default:
      st = absl::InternalError(message);
      break;
  }
  st.SetPayload(absl::string_view(errno_payload_url.data(), errno_payload_url.size()),
                absl::Cord(absl::StrCat(err)));
  return st;
}

// The errno behind a status made by errno_status, or 0.
inline int errno_of(const absl::Status& st) {
  const auto p =
      st.GetPayload(absl::string_view(errno_payload_url.data(), errno_payload_url.size()));
  int err = 0;
  if (!p || !absl::SimpleAtoi(std::string(*p), &err)) return 0;
  return err;
}

// Whether the file system ran out of space (or quota): what deleting files can cure.
inline bool is_out_of_space(const absl::Status& st) {
  const int err = errno_of(st);
  return err == ENOSPC || err == EDQUOT;
}

// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A read-only shared mapping of a file's first `size` bytes.
class mapping {
 public:
  mapping() = default;
  mapping(mapping&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  mapping& operator=(mapping&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping() { reset(); }

  // MAP_POPULATE pre-faults the pages, so reads through the mapping take no page fault (and no
  // system call) while the pages stay in the page cache.
  static absl::StatusOr<mapping> map(int fd, std::size_t size, const std::string& path) {
    mapping m;
    if (size == 0) return m;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return errno_status(errno, absl::StrCat("mmap ", path));
    m.data_ = static_cast<const std::byte*>(p);
    m.size_ = size;
    return m;
  }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  void reset() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Writes all of [data, data + size) at `offset`, retrying short writes and EINTR.
inline absl::Status pwrite_all(int fd, const std::byte* data, std::size_t size, off_t offset,
                               const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, absl::StrCat("write ", path));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

inline absl::Status sync_data(int fd, const std::string& path) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return errno_status(errno, absl::StrCat("fdatasync ", path));
  }
  return absl::OkStatus();
}

// Makes a directory's entries (created, renamed and removed files) durable.
inline absl::Status sync_directory(const std::string& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_status(errno, absl::StrCat("open directory ", dir));
  while (::fsync(fd.get()) != 0) {
    if (errno != EINTR) return errno_status(errno, absl::StrCat("fsync directory ", dir));
  }
  return absl::OkStatus();
}

// Creates `dir` and any missing parents, and checks that it is a writable directory.
inline absl::Status ensure_directory(const std::string& dir) {
  for (std::size_t at = dir.find('/', 1);; at = dir.find('/', at + 1)) {
    const std::string prefix = dir.substr(0, at);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return errno_status(errno, absl::StrCat("create directory ", prefix));
    }
    if (at == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_status(errno, absl::StrCat("stat ", dir));
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return errno_status(errno, absl::StrCat("directory ", dir, " is not writable"));
  }
  return absl::OkStatus();
}

// Holds an exclusive flock on `<dir>/LOCK` for as long as it lives. flock locks belong to the
// open file, so a second cache on the same directory is kept out whether it is in another
// process or in this one; the kernel drops the lock when the process dies, so a crash never
// leaves the directory locked.
class directory_lock {
 public:
  static absl::StatusOr<directory_lock> acquire(const std::string& dir) {
    const std::string path = dir + "/LOCK";
    directory_lock l;
    l.fd_ = unique_fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!l.fd_) return errno_status(errno, absl::StrCat("open lock file ", path));
    while (::flock(l.fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat("goldylox: cold tier directory ", dir,
                                                          " is in use by another open cache (",
                                                          path, " is locked)"));
      }
      return errno_status(errno, absl::StrCat("flock ", path));
    }
    return l;
  }

 private:
  unique_fd fd_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
