// Real I/O errors and a power-loss check for the whole cache, through the public API.
//
// This test binary defines pwrite, fdatasync and fsync itself. The library is header-only, so its
// calls in this executable bind to these definitions, which pass through to the C library's
// (found with dlsym(RTLD_NEXT), under a sanitizer its interceptor) unless a test asks them to:
//  - fail with an errno (EIO): the error a failing disk returns, which RLIMIT_FSIZE or a
//    read-only directory cannot produce;
//  - record which files (by inode) have bytes written since their last fdatasync or fsync, so a
//    test can check that when a call returns nothing it wrote is waiting in the page cache: a power
//    loss at that instant would lose none of it.
// Fault injection runs in a child process (in_child), so a flag left set cannot reach other tests.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "goldylox/goldylox.hpp"
#include "test_support.hpp"

namespace io_faults {
std::atomic<int> pwrite_errno{0};  // 0: pass through
std::atomic<int> sync_errno{0};
std::atomic<bool> tracking{false};
std::mutex mu;
std::set<ino_t> unsynced;  // guarded by mu

template <class Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

ino_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

void synced(int fd) {
  if (!tracking.load()) return;
  std::lock_guard lock(mu);
  unsynced.erase(inode_of(fd));
}

// fdatasync or fsync: fails with sync_errno when set, else syncs and marks the file synced.
int sync_through(int (*real)(int), int fd) {
  if (const int e = sync_errno.load()) {
    errno = e;
    return -1;
  }
  const int r = real(fd);
  if (r == 0) synced(fd);
  return r;
}

std::size_t unsynced_files() {
  std::lock_guard lock(mu);
  return unsynced.size();
}
}  // namespace io_faults

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static const auto real = io_faults::next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  if (const int e = io_faults::pwrite_errno.load()) {
    errno = e;
    return -1;
  }
  const ssize_t written = real(fd, buf, n, offset);
  if (written > 0 && io_faults::tracking.load()) {
    std::lock_guard lock(io_faults::mu);
    io_faults::unsynced.insert(io_faults::inode_of(fd));
  }
  return written;
}

extern "C" int fdatasync(int fd) {
  static const auto real = io_faults::next<int (*)(int)>("fdatasync");
  return io_faults::sync_through(real, fd);
}

extern "C" int fsync(int fd) {
  static const auto real = io_faults::next<int (*)(int)>("fsync");
  return io_faults::sync_through(real, fd);
}

namespace {

using goldylox_test::temp_dir;

absl::StatusOr<goldylox::typed_cache<int, std::string>> build(const std::string& dir,
                                                              goldylox::cold_durability durability,
                                                              bool write_through) {
  return goldylox::typed_cache<int, std::string>::builder()
      .hot_tier_max_entries(1)
      .warm_tier_max_entries(0)
      .cold_tier_storage_path(dir)
      .cold_tier_segment_bytes(64 << 10)
      .cold_tier_max_bytes(16 << 20)
      .cold_tier_codec("none")
      .cold_tier_durability(durability)
      .cold_tier_write_through(write_through)
      // Inline demotions: the sequences below check what each eviction wrote (and synced) by
      // the time the call that caused it returned; and in a forked child the shared default
      // pool has no threads.
      .enable_background_workers(false)
      .build();
}

// Keys 1 and 2 on disk (key 3 in memory pushes them out); then every write and sync returns EIO:
// each write of a key fails with the error, and every key keeps its value, also after a restart.
int eio_sequence(const std::string& dir, goldylox::cold_durability durability, bool write_through,
                 std::atomic<int>& fault) {
  {
    auto made = build(dir, durability, write_through);
    if (!made.ok()) return 10;
    auto& cache = *made;
    if (!cache.put(1, "OLD").ok() || !cache.put(2, "R").ok() || !cache.put(3, "M").ok()) {
      return 11;
    }
    if (cache.stats().cold_size < 2) return 12;
    fault = EIO;
    if (cache.put(1, "NEW").ok()) return 20;  // its tombstone (or record) could not be written
    if (cache.get(1) != "OLD") return 21;
    const absl::StatusOr<bool> removed = cache.remove(2);
    if (removed.ok()) return 22;
    if (removed.status().message().find("Input/output error") == std::string::npos &&
        removed.status().message().find("I/O") == std::string::npos) {
      return 23;  // the error says what happened
    }
    if (!cache.contains(2) || cache.get(2) != "R") return 24;
    if (cache.replace(1, "NEW").ok()) return 25;
    if (cache.get(1) != "OLD") return 26;
    // Bulk writes: every key fails alone, keeps its value, and the error says how many failed.
    const absl::Status all =
        cache.put_all(std::vector<std::pair<int, std::string>>{{1, "NEW"}, {2, "NEW"}});
    if (all.ok() || all.message().find("2 of 2 keys failed") == std::string::npos) return 40;
    if (cache.get(1) != "OLD" || cache.get(2) != "R") return 41;
    const absl::StatusOr<std::size_t> gone = cache.remove_all({1, 2});
    if (gone.ok() || gone.status().code() != removed.status().code()) return 42;
    if (cache.get(1) != "OLD" || cache.get(2) != "R") return 43;
    fault = 0;
    if (!cache.put(1, "NEWER").ok()) return 27;  // the cache goes on once the disk does
    if (cache.get(1) != "NEWER") return 28;
    if (!cache.close().ok()) return 29;
  }
  auto made = build(dir, goldylox::cold_durability::none, false);
  if (!made.ok()) return 30;
  if (made->get(1) != "NEWER") return 31;
  if (made->get(2) != "R") return 32;
  return 0;
}

TEST(ColdCacheIoErrors, AnEioFromAWriteFailsTheCallAndChangesNothing) {
  for (const bool write_through : {false, true}) {
    for (const auto mode :
         {goldylox::cold_durability::none, goldylox::cold_durability::every_write}) {
      temp_dir dir;
      EXPECT_EQ(goldylox_test::in_child([&] {
                  return eio_sequence(dir.path(), mode, write_through, io_faults::pwrite_errno);
                }),
                0)
          << goldylox::to_string(mode) << (write_through ? ", write-through" : ", write-back");
    }
  }
}

// Under every_write a write is acknowledged only once synced: an EIO from fdatasync fails it.
TEST(ColdCacheIoErrors, AnEioFromASyncFailsAnEveryWriteWrite) {
  for (const bool write_through : {false, true}) {
    temp_dir dir;
    EXPECT_EQ(goldylox_test::in_child([&] {
                return eio_sequence(dir.path(), goldylox::cold_durability::every_write,
                                    write_through, io_faults::sync_errno);
              }),
              0)
        << (write_through ? "write-through" : "write-back");
  }
}

// The power-loss check of write-through with every_write: when a put, replace or remove returns,
// no file has bytes written and not yet synced, so a power loss right then loses nothing that
// call wrote (and the kill -9 test shows that what it wrote is the value). Write-back, by
// contrast, keeps a put's value in memory: it is not on disk at all until evicted or closed.
TEST(ColdCacheIoErrors, WriteThroughEveryWriteLeavesNothingUnsyncedWhenACallReturns) {
  temp_dir dir;
  const int code = goldylox_test::in_child([&] {
    auto made = build(dir.path(), goldylox::cold_durability::every_write, true);
    if (!made.ok()) return 10;
    auto& cache = *made;
    io_faults::tracking = true;
    for (int i = 0; i < 400; ++i) {  // 400 x 1 KiB: several segments, so rolls are covered
      const int key = i % 150;
      if (i % 7 == 3) {
        if (!cache.remove(key).ok()) return 11;
      } else if (!cache.put(key, std::string(1000, static_cast<char>('a' + i % 26))).ok()) {
        return 12;
      }
      if (io_faults::unsynced_files() != 0) return 20;
    }
    if (cache.stats().cold_size < 100) return 13;
    return 0;
  });
  EXPECT_EQ(code, 0);
}

}  // namespace
