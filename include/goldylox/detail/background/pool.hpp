// Component background/ (layer 0, beside common/): a pool of std::jthread workers running the
// jobs that caches register, shareable by any number of caches. It knows nothing of caches: a
// job is a function and a period; what runs on it is the registrant's business (today the cold
// store's periodic syncer, cold/store.hpp, and the engine's demotion write-back,
// engine/demotion.hpp).
//
// Owns: the workers, and the schedule of the registered jobs. A job's state (its function, its
// stop_source, its pending flag) is owned by its job_handle; the pool holds plain pointers to
// the registered ones, in `jobs_`.
//
// Scheduling. Every job has a `due` time: the next period for a periodic job, the time of the
// notify for a notified one, never (time_point::max) for an idle period-0 job. An idle worker
// runs the job with the earliest due time that has passed, so notified and periodic jobs are
// served in the order they became due (a pool holds a few jobs per cache: the scan is linear).
// With nothing due, a worker sleeps on a condition_variable_any until the earliest due time, a
// schedule change or its stop_token; no worker spins. A periodic job's next due time is the start
// of its run plus its period: it runs about every period, or back to back if a run takes longer.
//
// Invariants (under mu_):
//  * A job runs on at most one worker at a time: `runner` is the running worker's id, and a
//    worker only picks jobs whose runner is empty. A job in `jobs_` is not removed; a removed
//    job is never picked again.
//  * pending == true means a run will start after the notify that set it: the job is due now,
//    or it is running and the worker reschedules it when the run ends, or the notifier is about
//    to take mu_ to make it due. notify() therefore takes mu_ only on the false -> true
//    transition; a notify that finds the flag set costs one atomic exchange.
//  * ~job_handle returns only when the job is unregistered and no run of it is in progress, so
//    after it no run of the job starts or is running. Destroying a handle from inside its own run
//    would wait for itself forever: it is detected (runner == this thread) and aborts with a
//    message instead.
//  * The pool outlives its handles: ~worker_pool aborts with a message if a job is still
//    registered, or if it runs on one of its own workers (it would join itself).
//
// Memory ordering. Every change of `pending` is an acq_rel exchange, so the worker's exchange
// that clears it before a run reads the last notify's write, and whatever a notifier wrote
// before notify() happens-before the run it asked for. Everything else is guarded by mu_.
//
// A job that throws is counted (failures) and the worker carries on; the exception is dropped,
// so a job reports its own errors (the cold syncer counts them in its stats).
//
// fork(). The child gets a copy of the forking thread only: none of a pool's workers, and any
// mutex another thread held at that moment stays locked for ever. So every pool is on a
// process-wide list, and pthread_atfork handlers (installed once) take the list's mutex and every
// pool's mu_ before fork() and release them after it, in the parent and in the child: the child
// inherits no mutex of a pool held. In the child each pool is then `orphaned`: a run that was in
// progress is forgotten (its worker is gone), and the condition variables, whose internal mutexes
// a parent thread may have held, are never touched again. The child's first add() or notify()
// starts fresh workers with fresh condition variables (the old thread objects and condition
// variables are leaked: joining or destroying them would wait on threads that do not exist), and
// a pool destroyed while still orphaned leaks them the same way instead of joining. What a run in
// progress at the fork held (a cache's own locks) is the caller's business: a cache in use by
// another thread at fork() is not safe to use in the child (docs/configuration.md).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::size_t max_pool_threads = 256;

// A misuse that would otherwise deadlock (or join a thread from itself): report and abort in every
// build, since a hang is harder to diagnose than a crash with a message.
[[noreturn]] inline void background_misuse(const char* what) noexcept {
  std::fprintf(stderr, "goldylox: background pool misuse: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

struct worker_pool_stats {
  std::uint64_t runs = 0;      // job runs finished, failed ones included
  std::uint64_t failures = 0;  // runs that ended with an exception
  std::size_t jobs = 0;        // jobs registered now
  std::size_t threads = 0;
};

// One registered job. Owned by its job_handle; the pool points to it while it is registered and
// while a worker runs it.
struct pool_job {
  using clock = std::chrono::steady_clock;

  std::function<void(std::stop_token)> run;
  std::chrono::nanoseconds period{0};  // 0: runs only when notified
  std::stop_source stop;               // requested when the handle is destroyed
  std::atomic<bool> pending{false};    // notified, and that run has not started yet
  // Guarded by the pool's mutex:
  clock::time_point due = clock::time_point::max();
  std::thread::id runner;  // the worker running it; empty when idle
  bool removed = false;
};

class worker_pool;

// A registered job. notify() asks for a run soon; destroying the handle unregisters the job and
// waits for a run in progress to end (from any thread but the job's own run, which aborts).
class job_handle {
 public:
  job_handle(const job_handle&) = delete;
  job_handle& operator=(const job_handle&) = delete;
  ~job_handle();

  // Thread-safe. A notify during a run makes the job run once more after it; several notifies
  // before a run starts make one run.
  void notify() noexcept;

 private:
  friend class worker_pool;
  job_handle(worker_pool& pool, std::unique_ptr<pool_job> job) noexcept
      : pool_(pool), job_(std::move(job)) {}

  worker_pool& pool_;
  std::unique_ptr<pool_job> job_;
};

class worker_pool {
 public:
  using clock = pool_job::clock;

  // std::invalid_argument unless 1 <= threads <= max_pool_threads; std::system_error if a thread
  // cannot be started (the ones already started are stopped and joined).
  explicit worker_pool(std::size_t threads) : threads_(threads) {
    if (threads == 0 || threads > max_pool_threads) {
      throw std::invalid_argument("goldylox: a background pool needs 1 to " +
                                  std::to_string(max_pool_threads) + " threads, got " +
                                  std::to_string(threads));
    }
    fork_guard::enlist(this);
    try {
      start_workers();
    } catch (...) {
      for (std::jthread& w : workers_) w.request_stop();
      workers_.clear();  // joins the ones that started
      fork_guard::leave(this);
      throw;
    }
  }

  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // Stops and joins the workers. Every job_handle must have been destroyed before.
  ~worker_pool() {
    {
      std::lock_guard lock(mu_);
      if (!jobs_.empty()) {
        background_misuse(
            "a worker_pool destroyed while jobs are registered; destroy every job_handle "
            "first");
      }
    }
    for (const std::jthread& w : workers_) {
      if (w.get_id() == std::this_thread::get_id()) {
        background_misuse(
            "a worker_pool destroyed on one of its own workers (its last owner released "
            "inside a job); it cannot join itself");
      }
    }
    fork_guard::leave(this);
    if (orphaned_) {
      abandon_workers();  // the threads are the parent's: nothing to join in this process
      return;
    }
    for (std::jthread& w : workers_) w.request_stop();
    workers_.clear();  // joins
  }

  // Registers `run`. It runs when notified through the handle and, with a period > 0, about
  // every period (the first run one period from now). The stop_token it receives is requested
  // when the handle is destroyed, so a long run can end early. std::invalid_argument for an
  // empty function or a negative period.
  std::unique_ptr<job_handle> add(std::function<void(std::stop_token)> run,
                                  std::chrono::nanoseconds period) {
    if (!run) throw std::invalid_argument("goldylox: a background job needs a function");
    if (period.count() < 0) {
      throw std::invalid_argument("goldylox: a background job's period must not be negative");
    }
    auto job = std::make_unique<pool_job>();
    job->run = std::move(run);
    job->period = period;
    pool_job* const raw = job.get();
    // Built before the job is registered, so an allocation failure leaves nothing behind.
    std::unique_ptr<job_handle> handle(new job_handle(*this, std::move(job)));
    {
      std::lock_guard lock(mu_);
      if (orphaned_) restart_locked();  // first use in a forked child
      jobs_.push_back(raw);             // if this throws, ~job_handle unregisters nothing
      if (period.count() > 0) {
        raw->due = after(clock::now(), period);
        ++wake_;
      }
    }
    if (period.count() > 0) work_cv_->notify_one();  // an idle worker's earliest due time moved
    return handle;
  }

  std::size_t thread_count() const noexcept { return threads_; }

  worker_pool_stats stats() const {
    std::lock_guard lock(mu_);
    return {runs_, failures_, jobs_.size(), threads_};
  }

 private:
  friend class job_handle;

  static clock::time_point after(clock::time_point t, std::chrono::nanoseconds d) noexcept {
    // Saturates: a period of centuries means "practically never", not an overflow.
    const auto room = clock::time_point::max() - t;
    return d >= room ? clock::time_point::max()
                     : t + std::chrono::duration_cast<clock::duration>(d);
  }

  // The idle job due first, and its due time (max when there is none).
  pool_job* earliest_locked(clock::time_point& due) const noexcept {
    pool_job* best = nullptr;
    due = clock::time_point::max();
    for (pool_job* j : jobs_) {
      if (j->runner == std::thread::id() && j->due < due) {
        best = j;
        due = j->due;
      }
    }
    return best;
  }

  void work(const std::stop_token& stop) {
    std::unique_lock lock(mu_);
    while (!stop.stop_requested()) {
      clock::time_point due;
      pool_job* const job = earliest_locked(due);
      const clock::time_point now = clock::now();
      if (job != nullptr && due <= now) {
        run_locked(lock, *job, now);
        continue;
      }
      const std::uint64_t seen = wake_;
      const auto changed = [&] { return wake_ != seen; };
      if (due == clock::time_point::max()) {
        work_cv_->wait(lock, stop, changed);
      } else {
        work_cv_->wait_until(lock, stop, due, changed);
      }
    }
  }

  void run_locked(std::unique_lock<std::mutex>& lock, pool_job& job, clock::time_point start) {
    // Cleared before the run, so a notify from now on asks for another run.
    (void)job.pending.exchange(false, std::memory_order_acq_rel);
    job.runner = std::this_thread::get_id();
    job.due = clock::time_point::max();
    const std::stop_token token = job.stop.get_token();
    lock.unlock();
    bool failed = false;
    try {
      job.run(token);
    } catch (...) {
      failed = true;
    }
    lock.lock();
    ++runs_;
    if (failed) ++failures_;
    job.runner = std::thread::id();
    if (job.removed) {
      // Its handle waits for this run; once mu_ is released the job may be gone.
      done_cv_->notify_all();
      return;
    }
    if (job.pending.load(std::memory_order_acquire)) {
      job.due = clock::now();
    } else if (job.period.count() > 0) {
      job.due = after(start, job.period);
    }
    if (job.due != clock::time_point::max()) {
      // Other idle workers computed their wait without this job (it was running).
      ++wake_;
      work_cv_->notify_one();
    }
  }

  // notify()'s slow path: the job became pending.
  void make_due(pool_job& job) noexcept {
    {
      std::lock_guard lock(mu_);
      if (orphaned_) {
        try {
          restart_locked();  // first use in a forked child
        } catch (...) {      // no thread could be started: the job runs when one can be
          return;
        }
      }
      // Running: the worker sees `pending` when the run ends. Removed: its handle is going away.
      if (job.runner != std::thread::id() || job.removed) return;
      job.due = std::min(job.due, clock::now());
      ++wake_;
    }
    work_cv_->notify_one();
  }

  void remove(pool_job& job) {
    {
      std::lock_guard lock(mu_);
      if (job.runner == std::this_thread::get_id()) {
        background_misuse(
            "a job_handle destroyed from inside its own job; it would wait for that run to end "
            "forever. Destroy it from another thread");
      }
      job.removed = true;
      std::erase(jobs_, &job);
    }
    // Outside mu_: the stop callbacks the job registered run here and may notify other jobs.
    job.stop.request_stop();
    std::unique_lock lock(mu_);
    done_cv_->wait(lock, [&] { return job.runner == std::thread::id(); });
  }

  void start_workers() {
    workers_.reserve(threads_);
    for (std::size_t i = 0; i < threads_; ++i) {
      workers_.emplace_back([this](std::stop_token stop) { work(stop); });
    }
  }

  // The parent's workers and condition variables, in a forked child: leaked, never touched
  // (destroying a std::jthread joins, and these threads do not exist here).
  void abandon_workers() noexcept {
    if (new (std::nothrow) std::vector<std::jthread>(std::move(workers_)) == nullptr) {
      for (std::jthread& w : workers_) w.detach();  // no memory to keep them in
    }
    workers_.clear();
    (void)work_cv_.release();
    (void)done_cv_.release();
  }

  // In a forked child, under mu_: fresh condition variables and workers (they wait for mu_,
  // which this thread holds). Throws (std::bad_alloc, std::system_error), the pool still
  // orphaned, if not even one worker can be started; with some started, runs on those.
  void restart_locked() {
    auto work_cv = std::make_unique<std::condition_variable_any>();
    auto done_cv = std::make_unique<std::condition_variable>();
    abandon_workers();
    work_cv_ = std::move(work_cv);
    done_cv_ = std::move(done_cv);
    try {
      start_workers();
    } catch (...) {
      if (workers_.empty()) throw;
    }
    orphaned_ = false;
  }

  // pthread_atfork's side (see the design comment). The list and its mutex live as long as the
  // process (a function-local static, never destroyed: a pool destroyed at exit still leaves it).
  struct fork_guard {
    std::mutex mu;
    std::vector<worker_pool*> pools;

    static fork_guard& get() {
      static fork_guard* const g = [] {
        auto* made = new fork_guard;
        if (::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child) != 0) {
          throw std::runtime_error("goldylox: pthread_atfork failed");
        }
        return made;
      }();
      return *g;
    }
    static void enlist(worker_pool* p) {
      fork_guard& g = get();
      std::lock_guard lock(g.mu);
      g.pools.push_back(p);
    }
    static void leave(worker_pool* p) noexcept {
      fork_guard& g = get();
      std::lock_guard lock(g.mu);
      std::erase(g.pools, p);
    }
    static void before_fork() noexcept {
      fork_guard& g = get();
      g.mu.lock();
      for (worker_pool* p : g.pools) p->mu_.lock();
    }
    static void after_fork_in_parent() noexcept {
      fork_guard& g = get();
      for (worker_pool* p : g.pools) p->mu_.unlock();
      g.mu.unlock();
    }
    static void after_fork_in_child() noexcept {
      fork_guard& g = get();
      for (worker_pool* p : g.pools) {
        p->orphaned_ = true;
        for (pool_job* j : p->jobs_) {
          // A notify still pending stays due, but its flag is cleared so that the child's next
          // notify() takes the slow path, which starts the workers.
          const bool pending = j->pending.exchange(false, std::memory_order_relaxed);
          if (pending) j->due = clock::now();
          if (j->runner != std::thread::id()) {  // that run was on a worker this process lacks
            j->runner = std::thread::id();
            j->due = pending || j->period.count() > 0 ? clock::now() : clock::time_point::max();
          }
        }
        p->mu_.unlock();
      }
      g.mu.unlock();
    }
  };

  const std::size_t threads_;
  mutable std::mutex mu_;
  std::unique_ptr<std::condition_variable_any> work_cv_ =
      std::make_unique<std::condition_variable_any>();  // idle workers
  // Handles waiting for a run of their job to end.
  std::unique_ptr<std::condition_variable> done_cv_ = std::make_unique<std::condition_variable>();
  // Guarded by mu_:
  bool orphaned_ = false;  // a forked child's copy: the workers are the parent's
  std::vector<pool_job*> jobs_;
  std::uint64_t wake_ = 0;  // bumped when a job becomes due earlier than idle workers planned
  std::uint64_t runs_ = 0;
  std::uint64_t failures_ = 0;
  // Last: destroyed (stopped and joined) first, while the members above still exist.
  std::vector<std::jthread> workers_;
};

inline job_handle::~job_handle() {
  pool_.remove(*job_);
}

inline void job_handle::notify() noexcept {
  if (job_->pending.exchange(true, std::memory_order_acq_rel)) return;
  pool_.make_due(*job_);
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
