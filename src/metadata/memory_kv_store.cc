// The in-memory KvStore engine (tests): optimistic concurrency control.
//  - Committed data is one sorted map; every key ever written also has a
//    version, the number of the last commit that wrote it (0 = never
//    written). Versions are never erased, so a deleted key keeps a tombstone
//    version and "absent, created, deleted again" still reads as a change.
//  - A transaction buffers its writes (key -> value, or nullopt = delete);
//    Get and Scan merge the buffer over the committed data.
//  - GetForUpdate records the version the key had when first read. Commit
//    checks, under the store mutex, that every recorded key still has that
//    version and returns kAborted otherwise; then it applies the writes with
//    a new version. Keys written without GetForUpdate (blind writes) are not
//    validated. A later GetForUpdate re-validates the earlier ones and fails
//    early, so the keys read for update always form a consistent view.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "metadata/kv_store.h"

namespace needlefs {
namespace {

/// The committed state, shared by the store and its transactions.
struct MemoryState {
  std::mutex mu;
  /// Committed keys and values. Guarded by mu.
  std::map<std::string, std::string, std::less<>> data;
  /// key -> number of the last commit that wrote it (put or delete); never
  /// shrinks. Guarded by mu.
  std::unordered_map<std::string, uint64_t> versions;
  /// Number of the last commit that wrote something. Guarded by mu.
  uint64_t last_commit = 0;

  /// The version of `key`, 0 when it was never written. REQUIRES: mu held.
  uint64_t VersionOf(const std::string& key) const {
    auto it = versions.find(key);
    return it == versions.end() ? 0 : it->second;
  }
};

/// Where a scan starts in a sorted map: after start_after when that lies
/// inside or past the prefix range, else at the prefix.
template <typename Map>
typename Map::const_iterator ScanStart(const Map& map, std::string_view prefix,
                                       std::string_view start_after) {
  if (!start_after.empty() && start_after >= prefix) return map.upper_bound(start_after);
  return map.lower_bound(prefix);
}

class MemoryKvTransaction final : public KvTransaction {
 public:
  explicit MemoryKvTransaction(std::shared_ptr<MemoryState> state) : state_(std::move(state)) {}

  StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    if (auto w = writes_.find(key); w != writes_.end()) return w->second;
    std::lock_guard<std::mutex> lock(state_->mu);
    return CommittedValue(key);
  }

  StatusOr<std::optional<std::string>> GetForUpdate(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    std::lock_guard<std::mutex> lock(state_->mu);
    NEEDLEFS_RETURN_IF_ERROR(Validate());
    std::string k(key);
    read_versions_.try_emplace(k, state_->VersionOf(k));  // keeps the first read's version
    if (auto w = writes_.find(key); w != writes_.end()) return w->second;
    return CommittedValue(key);
  }

  Status Scan(std::string_view prefix, std::string_view start_after, size_t limit,
              const std::function<bool(std::string_view, std::string_view)>& fn) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    // Copy the committed range first: fn runs without the store mutex (it may
    // call back into this transaction). Each buffered write hides or replaces
    // at most one committed key, so limit + writes_.size() entries suffice.
    size_t max_committed =
        limit == 0 || limit > SIZE_MAX - writes_.size() ? SIZE_MAX : limit + writes_.size();
    std::vector<std::pair<std::string, std::string>> committed;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      for (auto it = ScanStart(state_->data, prefix, start_after);
           it != state_->data.end() && it->first.starts_with(prefix); ++it) {
        if (committed.size() >= max_committed) break;
        committed.emplace_back(it->first, it->second);
      }
    }
    // Merge the two sorted sequences; on equal keys the buffered write wins.
    auto c = committed.begin();
    auto w = ScanStart(writes_, prefix, start_after);
    auto w_in_range = [&] { return w != writes_.end() && w->first.starts_with(prefix); };
    size_t visited = 0;
    while (c != committed.end() || w_in_range()) {
      std::string_view key, value;
      if (w_in_range() && (c == committed.end() || w->first <= c->first)) {
        if (c != committed.end() && c->first == w->first) ++c;  // shadowed
        bool deleted = !w->second.has_value();
        key = w->first;
        if (!deleted) value = *w->second;
        ++w;
        if (deleted) continue;
      } else {
        key = c->first;
        value = c->second;
        ++c;
      }
      if (!fn(key, value)) break;
      if (limit != 0 && ++visited >= limit) break;
    }
    return Status::OK();
  }

  Status Put(std::string_view key, std::string_view value) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    writes_.insert_or_assign(std::string(key), std::string(value));
    return Status::OK();
  }

  Status Delete(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    writes_.insert_or_assign(std::string(key), std::nullopt);
    return Status::OK();
  }

  Status Commit() override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    done_ = true;
    std::lock_guard<std::mutex> lock(state_->mu);
    NEEDLEFS_RETURN_IF_ERROR(Validate());
    if (writes_.empty()) return Status::OK();
    uint64_t version = ++state_->last_commit;
    for (auto& [key, value] : writes_) {
      state_->versions[key] = version;
      if (value) {
        state_->data.insert_or_assign(key, std::move(*value));
      } else if (auto it = state_->data.find(key); it != state_->data.end()) {
        state_->data.erase(it);
      }
    }
    writes_.clear();
    return Status::OK();
  }

 private:
  Status CheckUsable() const {
    if (done_) return Status::FailedPrecondition("kv transaction used after Commit");
    return Status::OK();
  }

  /// kAborted when a key read by GetForUpdate was written since by another
  /// transaction. REQUIRES: state_->mu held.
  Status Validate() const {
    for (const auto& [key, version] : read_versions_) {
      if (state_->VersionOf(key) != version) {
        return Status::Aborted("memory kv: conflicting write to a key read for update");
      }
    }
    return Status::OK();
  }

  /// REQUIRES: state_->mu held.
  std::optional<std::string> CommittedValue(std::string_view key) const {
    auto it = state_->data.find(key);
    if (it == state_->data.end()) return std::nullopt;
    return it->second;
  }

  std::shared_ptr<MemoryState> state_;
  /// Keys read by GetForUpdate -> their version at the first such read.
  std::map<std::string, uint64_t, std::less<>> read_versions_;
  /// Buffered writes in key order: value, or nullopt for a delete.
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
  bool done_ = false;  // Commit was called (whatever its result)
};

class MemoryKvStore final : public KvStore {
 public:
  using KvStore::Begin;
  Status SyncLog() override { return Status::OK(); }
  std::unique_ptr<KvTransaction> Begin(const TxnOptions&) override {
    return std::make_unique<MemoryKvTransaction>(state_);
  }
  Status Flush() override { return Status::OK(); }

 private:
  std::shared_ptr<MemoryState> state_ = std::make_shared<MemoryState>();
};

}  // namespace

std::unique_ptr<KvStore> NewMemoryKvStore() { return std::make_unique<MemoryKvStore>(); }

}  // namespace needlefs
