// Dynamic batching: concurrent requests for the same work (lookups on one memory with the same
// options, searches over the same memories) are run as one kernel call of all their queries.
//
// Without a delay there is no scheduler thread: a request is queued and, if fewer than
// `executors` threads are running batches, the submitting thread becomes one and runs batches
// until the queue is empty. At low load a request runs at once on the thread that decoded it
// (no hand-off); the requests that arrive while all executors are busy form the next batches.
// With a `max_delay`, `executors` threads of the scheduler's own run the batches, and a batch
// that is not full waits until its oldest request is that old (Triton's max_queue_delay): the
// network threads keep reading the requests that fill it. A batch takes the oldest request and
// every queued one with its key, up to `max_batch` queries (a larger request runs alone). The
// queue holds at most `max_queue` requests: past that, submit() refuses (the transports answer
// 429 / RESOURCE_EXHAUSTED).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "status.h"

namespace linattn::serve {

using Clock = std::chrono::steady_clock;

class Scheduler {
 public:
  struct Limits {
    int64_t max_batch = 256;                   // queries per batch
    std::chrono::microseconds max_delay{0};
    int64_t max_queue = 4096;                  // requests waiting
    int executors = 2;                         // threads running batches at once
  };

  class Job {
   public:
    virtual ~Job() = default;
    std::string key;   // jobs with equal keys are batched together (and are of one type)
    int64_t rows = 1;  // queries
    Clock::time_point enqueued{}, deadline = Clock::time_point::max();
    // Runs `batch`, whose jobs all have this job's key; called on batch.front(). Completes every
    // job of the batch (its callback), errors included.
    virtual void run(std::span<std::unique_ptr<Job>> batch) = 0;
    virtual void fail(const Status& status) = 0;
  };

  // Called after every batch with its size in queries and requests.
  using BatchObserver = std::function<void(int64_t rows, int64_t requests)>;

  Scheduler(Limits limits, BatchObserver observer);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Queues `job` (and may run it, and others, before returning). Refused with `overloaded`
  // when the queue is full and `unavailable` once draining; a refused job is not completed.
  Status submit(std::unique_ptr<Job> job);
  // From now on refuse new jobs; returns when every queued and running job is complete.
  void drain();
  int64_t queued() const;
  const Limits& limits() const { return limits_; }

 private:
  // The next batch (expired jobs moved to `expired`); empty if the queue is. Waits for a
  // max_delay when it applies. Called with the lock held.
  std::vector<std::unique_ptr<Job>> take_batch(std::unique_lock<std::mutex>& lock,
                                               std::vector<std::unique_ptr<Job>>& expired);

  // Runs batches until the queue is empty (inline) or until draining ends (a worker).
  void execute(std::unique_lock<std::mutex>& lock, bool worker);

  const Limits limits_;
  BatchObserver observer_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<Job>> queue_;
  int active_ = 0;
  bool draining_ = false;
  std::vector<std::thread> workers_;  // with a max_delay only
};

}  // namespace linattn::serve
