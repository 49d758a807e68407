// A fixed set of threads running queued tasks in order of submission.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace needlefs {

/// `threads` workers (at least 1) take tasks from one queue, oldest first.
/// The destructor runs every task queued before it, then joins the
/// workers. Thread-safe.
class TaskPool {
 public:
  /// `max_queued`: tasks waiting beyond it are refused (Submit false).
  explicit TaskPool(int threads, size_t max_queued = std::numeric_limits<size_t>::max())
      : max_queued_(max_queued) {
    for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Run(); });
  }
  ~TaskPool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  /// Queues `task`. false: the queue is full, `task` was not taken.
  bool Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (tasks_.size() >= max_queued_) return false;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stop_ = false;                        // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;
};

}  // namespace needlefs
