#include "common/group_commit.h"

#include <algorithm>

namespace needlefs {

void GroupCommitter::Issued(uint64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  issued_ = std::max(issued_, seq);
}

Status GroupCommitter::WaitDurable(uint64_t seq) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (synced_ >= seq) return Status::OK();
    if (!error_.ok()) return error_;
    if (syncing_) {
      cv_.wait(l);
      continue;
    }
    // Become the leader for everything issued so far.
    syncing_ = true;
    const uint64_t target = issued_;
    l.unlock();
    Status s = sync_();
    l.lock();
    syncing_ = false;
    ++sync_count_;
    if (s.ok()) {
      synced_ = std::max(synced_, target);
    } else {
      error_ = s;
    }
    cv_.notify_all();
  }
}

uint64_t GroupCommitter::sync_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return sync_count_;
}

}  // namespace needlefs
