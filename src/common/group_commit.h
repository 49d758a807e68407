// Group commit: many concurrent writers share one fdatasync (volume files,
// the metadata WAL). A writer appends (under its own lock), calls
// Issued(seq) with its sequence number, releases the lock, then
// WaitDurable(seq). The first waiter becomes
// the leader and syncs everything issued so far; the others wait for it, and
// any whose write came after the leader sampled its target go in the next
// round. A failed sync is sticky: every later wait fails too (the state of
// the file after a failed fsync is unknown; see "fsyncgate").
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "common/status.h"

namespace needlefs {

class GroupCommitter {
 public:
  /// `sync` makes every write issued so far durable (e.g. fdatasync).
  explicit GroupCommitter(std::function<Status()> sync) : sync_(std::move(sync)) {}

  /// Records that writes up to `seq` (monotonic) have been issued.
  void Issued(uint64_t seq);
  /// Blocks until a sync that started after `seq` was issued has completed.
  /// Errors: the sync's error (sticky).
  Status WaitDurable(uint64_t seq);
  /// Syncs performed so far.
  uint64_t sync_count() const;

 private:
  const std::function<Status()> sync_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t issued_ = 0;      // GUARDED_BY(mu_)
  uint64_t synced_ = 0;      // GUARDED_BY(mu_)
  bool syncing_ = false;     // GUARDED_BY(mu_)
  uint64_t sync_count_ = 0;  // GUARDED_BY(mu_)
  Status error_;             // GUARDED_BY(mu_)
};

}  // namespace needlefs
