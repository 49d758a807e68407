// RunTransaction: the engine-independent retry loop around KvStore
// transactions (see kv_store.h).
#include "metadata/kv_store.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>

namespace needlefs {
namespace {

/// Base of the retry backoff; retry n sleeps uniformly in
/// [0, kBackoffBaseUs << min(n, kBackoffMaxShift)] microseconds (at most 3.2 ms).
constexpr int64_t kBackoffBaseUs = 50;
constexpr int kBackoffMaxShift = 6;

/// Sleeps before retry number `attempt` (>= 1). The jitter keeps transactions
/// that just conflicted from colliding again in lockstep.
void Backoff(int attempt) {
  // Seeded without std::random_device, which may throw.
  thread_local std::minstd_rand rng(static_cast<uint32_t>(
      std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
      static_cast<size_t>(std::chrono::steady_clock::now().time_since_epoch().count())));
  int64_t max_us = kBackoffBaseUs << std::min(attempt, kBackoffMaxShift);
  std::uniform_int_distribution<int64_t> dist(0, max_us);
  std::this_thread::sleep_for(std::chrono::microseconds(dist(rng)));
}

}  // namespace

Status RunTransaction(KvStore& store, const std::function<Status(KvTransaction&)>& fn,
                      int max_attempts) {
  return RunTransaction(store, TxnOptions{}, fn, max_attempts);
}

Status RunTransaction(KvStore& store, const TxnOptions& options,
                      const std::function<Status(KvTransaction&)>& fn, int max_attempts) {
  if (max_attempts < 1) return Status::InvalidArgument("RunTransaction: max_attempts < 1");
  Status last;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    // The previous attempt's transaction is already destroyed (rolled back,
    // locks released) when we sleep here.
    if (attempt > 0) Backoff(attempt);
    std::unique_ptr<KvTransaction> txn = store.Begin(options);
    Status s = fn(*txn);
    if (s.ok()) s = txn->Commit();
    if (!s.IsAborted()) return s;  // OK, or an error that a retry cannot fix
    last = std::move(s);
  }
  return last.WithContext("transaction gave up after " + std::to_string(max_attempts) +
                          " conflicting attempts");
}

}  // namespace needlefs
