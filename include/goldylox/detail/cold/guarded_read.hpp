// Reads through a file mapping that survive the file being truncated underneath.
//
// Why: the cold tier reads records through read-only MAP_SHARED mappings of its segment files
// (file_io.hpp `mapping`). If another process truncates a segment file while the cache has it
// mapped, the kernel removes the cut pages from every mapping, and the next load from one of them
// raises SIGBUS (si_code BUS_ADRERR: the page lies beyond the file's end; an I/O error while
// reading a page in is reported the same way). Unhandled, that kills the process.
//
// How: guarded_copy and guarded_compare run one memcpy / memcmp inside a window opened with
// sigsetjmp. A SIGBUS handler, installed once per process, siglongjmps back into the window when
// the faulting thread has one open and the faulting address lies on a page of the window's mapped
// source range; the call then reports the fault (false / guarded_result::fault) instead of the
// process dying. Any other SIGBUS -- a thread outside a window, an address outside the guarded
// range (the destination, the caller's key), a SIGBUS sent with kill() or raise() -- goes to
// whatever was installed before us, as if we were not there: its sa_sigaction or sa_handler runs
// (with its own sa_mask, SA_NODEFER and SA_RESETHAND honoured); if it was SIG_DFL (or SIG_IGN,
// which the kernel does not honour for a fault), SIG_DFL is restored and the handler returns, so
// the faulting instruction runs again and the default action ends the process (a sent SIGBUS is
// raised again under SIG_DFL, or dropped under SIG_IGN). Under AddressSanitizer the handler found
// at installation is ASan's (handle_sigbus=1, the default, lets others install theirs), so a fault
// outside a window still ends in ASan's report.
//
// The handler is installed with SA_SIGINFO | SA_NODEFER | SA_ONSTACK and an empty sa_mask: it
// blocks nothing, so the window can use sigsetjmp(env, 0), which saves no mask and makes no system
// call. Before jumping, the handler still sets the mask back to the one the fault interrupted
// (uc_sigmask, what sigreturn would restore): a runtime that interposes sigaction may run ours
// from a handler of its own that blocks more (ThreadSanitizer's blocks every signal), and a jump
// to a sigsetjmp(env, 0) restores no mask.
//
// Cost: a guarded call is a noinline call, a one-time-initialisation check, sigsetjmp(env, 0)
// (it stores a few registers) and two thread-local stores around the memcpy / memcmp: about 4 ns
// more than a plain 64-byte memcpy, and no system call. A caught fault costs a page fault, a
// signal delivery, one pthread_sigmask and siglongjmp (about 1 us). Handing a foreign SIGBUS on
// makes a few system calls (sigaction, pthread_sigmask), on the way to the previous handler.
//
// What is guarded: the loads from `src` / `mapped` inside one call, nothing else. A fault on the
// destination, on the other operand of a compare, or on any mapped read made elsewhere is not
// caught. On a fault the destination's contents are unspecified (partly copied).
//
// Installation: install_mapping_fault_handler() installs the handler the first time it is called
// (thread-safe, once per process; the guarded calls call it themselves) and returns whether the
// handler is in place. It is not, for instance, when AddressSanitizer runs with handle_sigbus=2
// (it then keeps SIGBUS to itself and ignores other handlers); the guarded calls then behave like
// plain memcpy / memcmp. A SIGBUS handler installed later by someone else replaces ours unless it
// chains to the handler it found.
//
// Each call saves the thread's open window and restores it on the way out (a fault included), so
// a guarded call made from a signal handler that interrupted another one leaves it guarded.
//
// Limitations: a thread that blocks SIGBUS is not guarded (the kernel delivers no fault's signal
// to a handler while it is blocked: it resets SIGBUS to SIG_DFL and kills the process). A thread
// whose alternate signal stack was set with SS_AUTODISARM loses it after a caught fault (the jump
// skips the sigreturn that re-arms it). In a dlopen()ed library, a foreign SIGBUS on a thread that
// never made a guarded call may make glibc allocate that thread's thread-local block inside the
// handler. Nothing here allocates or throws.
#pragma once

#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The outcome of guarded_compare.
enum class guarded_result : unsigned char {
  equal,      // the n bytes are equal
  different,  // they differ
  fault,      // reading the mapping raised SIGBUS (truncated file, I/O error)
};

namespace mapping_fault {

// One open window: where to jump back to, and the pages of the mapped source it guards.
struct window {
  sigjmp_buf env;
  std::uintptr_t first;  // first byte of the first page of the guarded source
  std::uintptr_t last;   // last byte of its last page
};

static_assert(std::atomic<window*>::is_always_lock_free,
              "the signal handler reads the open window through a lock-free atomic");

// The calling thread's open window, or null. Trivially constructible and destructible, and
// constant-initialised, so the handler reads it without a TLS initialisation guard.
inline constinit thread_local std::atomic<window*> open_window{nullptr};

// Written once by install(), before the handler is installed, and only read afterwards.
inline struct sigaction previous_action {};
inline std::uintptr_t page_mask = 4095;  // page size - 1

inline void restore_default(int sig) noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
}

// A SIGBUS that is not ours: whatever was installed before us handles it, as if we were not here.
inline void chain(int sig, siginfo_t* info, void* context) noexcept {
  const int saved_errno = errno;
  const struct sigaction& prev = previous_action;
  // si_code <= 0: sent by a process (kill, tgkill, sigqueue, raise), not raised by a fault.
  const bool sent = info == nullptr || info->si_code <= 0;
  // SIG_DFL and SIG_IGN first: sa_handler shares its storage with sa_sigaction, and a default
  // disposition may have been set with SA_SIGINFO in its flags.
  if (prev.sa_handler == SIG_IGN && sent) {
    // Ignored, as it would have been.
  } else if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
    // The kernel does not let a fault be ignored: both end the process with the default action.
    restore_default(sig);
    if (sent) ::raise(sig);  // delivered at once: SA_NODEFER left SIGBUS unblocked
    // A fault: returning runs the faulting instruction again, which now meets SIG_DFL.
  } else {
    // The previous handler runs with the mask the kernel would have given it: its sa_mask, and
    // SIGBUS itself unless it asked for SA_NODEFER; restored when it returns, as sigreturn would.
    sigset_t block = prev.sa_mask;
    if ((prev.sa_flags & SA_NODEFER) == 0) sigaddset(&block, sig);
    sigset_t before;
    ::pthread_sigmask(SIG_BLOCK, &block, &before);
    if ((prev.sa_flags & SA_RESETHAND) != 0) restore_default(sig);
    if ((prev.sa_flags & SA_SIGINFO) != 0) {
      prev.sa_sigaction(sig, info, context);
    } else {
      prev.sa_handler(sig);
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
  errno = saved_errno;
}

inline void on_sigbus(int sig, siginfo_t* info, void* context) noexcept {
  if (info != nullptr && info->si_code > 0) {
    window* const w = open_window.load(std::memory_order_relaxed);
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    if (w != nullptr && addr >= w->first && addr <= w->last) {
      // Leave the signal mask as it was when the read faulted, as sigreturn would have: the
      // handler the kernel ran may block more than ours (ThreadSanitizer installs its own, with
      // every signal blocked, and calls ours from it), and siglongjmp restores no mask.
      if (context != nullptr) {
        ::pthread_sigmask(SIG_SETMASK, &static_cast<const ucontext_t*>(context)->uc_sigmask,
                          nullptr);
      }
      siglongjmp(w->env, 1);
    }
  }
  chain(sig, info, context);
}

inline bool install() noexcept {
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) page_mask = static_cast<std::uintptr_t>(page) - 1;
  // Read what is there first, then install: the handler may run (on another thread) as soon as
  // the second call has installed it, and must find previous_action complete.
  if (::sigaction(SIGBUS, nullptr, &previous_action) != 0) return false;
  struct sigaction act {};
  act.sa_sigaction = &on_sigbus;
  sigemptyset(&act.sa_mask);
  act.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  if (::sigaction(SIGBUS, &act, nullptr) != 0) return false;
  // AddressSanitizer with handle_sigbus=2 reports success but keeps its own handler.
  struct sigaction now {};
  if (::sigaction(SIGBUS, nullptr, &now) != 0) return false;
  return (now.sa_flags & SA_SIGINFO) != 0 && now.sa_sigaction == &on_sigbus;
}

inline void set_range(window& w, const void* p, std::size_t n) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  // Whole pages: an optimised memcmp may read past the range's end within its last page.
  w.first = a & ~page_mask;
  w.last = (a + n - 1) | page_mask;
}

}  // namespace mapping_fault

// Installs the SIGBUS handler the first time (thread-safe, once per process); returns whether it
// is in place. The guarded calls call it themselves; a store may call it at open to report early.
inline bool install_mapping_fault_handler() noexcept {
  static const bool installed = mapping_fault::install();
  return installed;
}

// Copies n bytes from a mapping at src to dst. Returns false if reading src raised SIGBUS (the
// file was truncated below src + n, or the page could not be read); dst's contents are then
// unspecified. Only the reads of src are guarded.
//
// Between sigsetjmp and the end of the window there is nothing but raw-pointer memcpy (no object
// with a destructor for the jump to skip), and nothing modified after sigsetjmp is read after the
// jump. noinline keeps the window's loads inside this frame; the signal fences keep the compiler
// from moving them across the stores that open and close the window.
GOLDYLOX_NOINLINE inline bool guarded_copy(void* dst, const void* src, std::size_t n) noexcept {
  if (n == 0) return true;
  install_mapping_fault_handler();
  mapping_fault::window w;
  mapping_fault::set_range(w, src, n);
  mapping_fault::window* const outer = mapping_fault::open_window.load(std::memory_order_relaxed);
  if (sigsetjmp(w.env, 0) != 0) {
    mapping_fault::open_window.store(outer, std::memory_order_relaxed);
    return false;
  }
  mapping_fault::open_window.store(&w, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  mapping_fault::open_window.store(outer, std::memory_order_relaxed);
  return true;
}

// Compares n bytes of a mapping at `mapped` with n bytes at `other` (not a mapping that can be
// truncated: only the reads of `mapped` are guarded), without copying them.
GOLDYLOX_NOINLINE inline guarded_result guarded_compare(const void* mapped, const void* other,
                                                        std::size_t n) noexcept {
  if (n == 0) return guarded_result::equal;
  install_mapping_fault_handler();
  mapping_fault::window w;
  mapping_fault::set_range(w, mapped, n);
  mapping_fault::window* const outer = mapping_fault::open_window.load(std::memory_order_relaxed);
  if (sigsetjmp(w.env, 0) != 0) {
    mapping_fault::open_window.store(outer, std::memory_order_relaxed);
    return guarded_result::fault;
  }
  mapping_fault::open_window.store(&w, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const int order = std::memcmp(mapped, other, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  mapping_fault::open_window.store(outer, std::memory_order_relaxed);
  return order == 0 ? guarded_result::equal : guarded_result::different;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
