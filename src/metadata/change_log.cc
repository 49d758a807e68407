// ChangeLog: a mutex-guarded ring of ChangeEvents plus a condition variable
// for the Subscribe streams waiting for the next one.
#include "metadata/change_log.h"

#include <algorithm>
#include <cassert>
#include <random>

namespace needlefs {
namespace {

uint64_t NewEpoch() {
  std::random_device rd;
  uint64_t e = (uint64_t{rd()} << 32) ^ rd() ^
               static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return e == 0 ? 1 : e;
}

}  // namespace

ChangeLog::ChangeLog(const ChangeLogOptions& options)
    : capacity_(std::max<size_t>(options.capacity, 1)), epoch_(NewEpoch()) {
  assert(options.capacity > 0);
  ring_.resize(capacity_);
}

uint64_t ChangeLog::Append(const ChangeEvent& event) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = ++last_seq_;
    ring_[(seq - 1) % capacity_] = event;
  }
  cv_.notify_all();
  return seq;
}

uint64_t ChangeLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

bool ChangeLog::Read(uint64_t after_seq, size_t max,
                     std::vector<std::pair<uint64_t, ChangeEvent>>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (after_seq > last_seq_) return false;
  // The oldest seq still in the ring is last_seq_ - capacity_ + 1.
  if (last_seq_ - after_seq > capacity_) return false;
  uint64_t end = last_seq_;
  if (end - after_seq > max) end = after_seq + max;
  out->reserve(end - after_seq);
  for (uint64_t seq = after_seq + 1; seq <= end; ++seq) {
    out->emplace_back(seq, ring_[(seq - 1) % capacity_]);
  }
  return true;
}

bool ChangeLog::WaitFor(uint64_t after_seq, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return last_seq_ > after_seq || shutdown_; });
  return last_seq_ > after_seq;
}

void ChangeLog::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace needlefs
