// The meta server's change stream: an in-memory ring buffer of the
// namespace's committed changes (ChangeEvent, fed by NamespaceOptions::
// on_change), numbered by a sequence that clients follow through the
// Subscribe RPC to invalidate their caches.
//
// The stream is per meta process and not persisted: a restarted meta starts
// again at seq 1 with a new random epoch(), so subscribers must be reset (drop
// every cache). The Subscribe RPC sends a reset as its first message when the
// subscriber's seq is 0, from another epoch or beyond last_seq(), or when Read
// returns false (the events it missed were overwritten).
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "metadata/namespace_types.h"

namespace needlefs {

struct ChangeLogOptions {
  /// Events kept. A subscriber that falls further behind than this is reset
  /// (drops its caches); each event costs about 64 bytes plus its name.
  /// Default: 65536.
  size_t capacity = 65536;
};

class ChangeLog {
 public:
  /// REQUIRES: options.capacity > 0.
  explicit ChangeLog(const ChangeLogOptions& options = {});
  ChangeLog(const ChangeLog&) = delete;
  ChangeLog& operator=(const ChangeLog&) = delete;

  /// Stores a copy of `event` and wakes the waiters. Returns its seq: 1 for
  /// the first event, then one more for each.
  uint64_t Append(const ChangeEvent& event);
  /// The seq of the newest event; 0 when there is none.
  uint64_t last_seq() const;
  /// This process's stream id: random and non-zero, fixed for the object's
  /// lifetime. Subscribers from another epoch must be reset.
  uint64_t epoch() const { return epoch_; }

  /// Replaces *out with up to `max` (seq, event) pairs with seq > after_seq,
  /// oldest first (empty when there is none yet). Returns false (and leaves
  /// *out empty) when an event after `after_seq` was already overwritten or
  /// `after_seq` > last_seq() (a seq from before a restart): the subscriber
  /// must reset.
  bool Read(uint64_t after_seq, size_t max, std::vector<std::pair<uint64_t, ChangeEvent>>* out);
  /// Blocks until last_seq() > after_seq (returns true), or until `timeout`
  /// passed or Shutdown() was called (returns false unless an event arrived).
  bool WaitFor(uint64_t after_seq, std::chrono::milliseconds timeout);
  /// Wakes every waiter; later WaitFor calls return at once.
  void Shutdown();

 private:
  const size_t capacity_;
  const uint64_t epoch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ChangeEvent> ring_;  // GUARDED_BY(mu_): seq s at (s - 1) % capacity_
  uint64_t last_seq_ = 0;          // GUARDED_BY(mu_)
  bool shutdown_ = false;          // GUARDED_BY(mu_)
};

}  // namespace needlefs
