#include "scheduler.h"

#include <algorithm>
#include <utility>

namespace linattn::serve {

Scheduler::Scheduler(Limits limits, BatchObserver observer) : limits_(limits), observer_(std::move(observer)) {
  if (limits_.max_delay.count() > 0)
    for (int i = 0; i < limits_.executors; ++i)
      workers_.emplace_back([this] {
        std::unique_lock lock(mutex_);
        ++active_;
        execute(lock, true);
        --active_;
        changed_.notify_all();
      });
}

Scheduler::~Scheduler() {
  drain();
  for (auto& w : workers_) w.join();
}

int64_t Scheduler::queued() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

std::vector<std::unique_ptr<Scheduler::Job>> Scheduler::take_batch(std::unique_lock<std::mutex>& lock,
                                                                   std::vector<std::unique_ptr<Job>>& expired) {
  std::vector<std::unique_ptr<Job>> batch;
  while (!queue_.empty()) {
    const Clock::time_point now = Clock::now();
    // Expired jobs leave the queue first: they would only take a batch's place.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->deadline <= now) {
        expired.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (queue_.empty()) break;
    const Job& oldest = *queue_.front();
    int64_t rows = 0;
    Clock::time_point until = oldest.enqueued + limits_.max_delay;
    for (const auto& j : queue_) {
      if (j->key == oldest.key && (rows == 0 || rows + j->rows <= limits_.max_batch)) rows += j->rows;
      until = std::min(until, j->deadline);  // wake to fail a job whose deadline comes first
    }
    if (rows < limits_.max_batch && now < until && !draining_ && !workers_.empty()) {
      changed_.wait_until(lock, until);  // a new job, or the oldest one's delay is up
      continue;                          // look again: another executor may have taken it
    }
    const std::string key = oldest.key;
    rows = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->key == key && (rows == 0 || rows + (*it)->rows <= limits_.max_batch)) {
        rows += (*it)->rows;
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    break;
  }
  return batch;
}

Status Scheduler::submit(std::unique_ptr<Job> job) {
  std::unique_lock lock(mutex_);
  if (draining_) return {Code::unavailable, "the server is shutting down"};
  if (static_cast<int64_t>(queue_.size()) >= limits_.max_queue)
    return {Code::overloaded, "the queue is full (" + std::to_string(limits_.max_queue) + " requests): retry later"};
  job->enqueued = Clock::now();
  queue_.push_back(std::move(job));
  changed_.notify_all();  // a worker waiting for work or a fuller batch
  if (!workers_.empty() || active_ >= limits_.executors) return {};
  ++active_;
  execute(lock, false);
  --active_;
  changed_.notify_all();  // drain() waits for the last executor
  return {};
}

void Scheduler::execute(std::unique_lock<std::mutex>& lock, bool worker) {
  std::vector<std::unique_ptr<Job>> expired;
  while (true) {
    if (worker) changed_.wait(lock, [&] { return !queue_.empty() || draining_; });
    std::vector<std::unique_ptr<Job>> batch = take_batch(lock, expired);
    if (batch.empty() && expired.empty()) {
      if (!worker || draining_) break;
      continue;
    }
    lock.unlock();
    for (auto& j : expired) j->fail({Code::deadline_exceeded, "the deadline passed while the request was queued"});
    expired.clear();
    if (!batch.empty()) {
      int64_t rows = 0;
      for (const auto& j : batch) rows += j->rows;
      batch.front()->run(batch);
      if (observer_) observer_(rows, static_cast<int64_t>(batch.size()));
    }
    batch.clear();
    lock.lock();
  }
}

void Scheduler::drain() {
  std::unique_lock lock(mutex_);
  draining_ = true;
  changed_.notify_all();
  changed_.wait(lock, [&] { return queue_.empty() && active_ == 0; });
}

}  // namespace linattn::serve
