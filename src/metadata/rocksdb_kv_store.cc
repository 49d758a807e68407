// The RocksDB KvStore engine: a pessimistic rocksdb::TransactionDB
// (WRITE_COMMITTED). GetForUpdate and every Put/Delete take an exclusive
// per-key lock held until commit or rollback; a lock wait longer than
// KvOptions::lock_timeout_ms, or a detected deadlock, fails with kAborted so
// that RunTransaction redoes the transaction. Reads take no snapshot: Get,
// GetForUpdate and Scan see the latest committed data merged with the
// transaction's own writes. Uncommitted writes live only in the transaction's
// write batch, so destroying a transaction without Commit rolls it back.
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "common/group_commit.h"
#include "metadata/kv_store.h"

namespace needlefs {
namespace {

/// Write buffer (memtable) size: metadata values are small, so 32 MiB holds
/// many operations while keeping recovery replay short.
constexpr size_t kWriteBufferBytes = 32 << 20;
/// Block cache for data, index and filter blocks (bounds memory).
constexpr size_t kBlockCacheBytes = 64 << 20;

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

/// Maps a RocksDB status to ours; `what` names the operation. Lock timeouts,
/// deadlocks, write conflicts and expired transactions become kAborted (redo
/// the transaction); NotFound is handled by the callers before this.
Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsExpired()) {
    return Status::Aborted(msg);
  }
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNoSpace()) return Status::ResourceExhausted(msg);
  return Status::Internal(msg);
}

/// The smallest key above every key that starts with `prefix`, or "" if
/// there is none (an empty prefix, or one of 0xff bytes only).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

/// A Get/GetForUpdate result: the value, nullopt for NotFound, or the error.
StatusOr<std::optional<std::string>> ValueOrAbsent(const rocksdb::Status& s, std::string value,
                                                   std::string_view what) {
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, what);
  return std::optional<std::string>(std::move(value));
}

class RocksDbKvTransaction final : public KvTransaction {
 public:
  /// Keeps `db` alive, so a transaction may outlive its store.
  RocksDbKvTransaction(std::shared_ptr<rocksdb::TransactionDB> db,
                       const rocksdb::WriteOptions& write_options)
      : db_(std::move(db)) {
    rocksdb::TransactionOptions txn_options;
    txn_options.deadlock_detect = true;  // a deadlock fails fast with Busy -> kAborted
    txn_.reset(db_->BeginTransaction(write_options, txn_options));
  }

  ~RocksDbKvTransaction() override {
    // Deleting an uncommitted transaction discards its write batch and
    // releases its locks; the explicit Rollback just says so.
    if (!committed_) txn_->Rollback().PermitUncheckedError();
    txn_.reset();  // before db_
  }

  StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    std::string value;
    rocksdb::Status s = txn_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
    return ValueOrAbsent(s, std::move(value), "rocksdb get");
  }

  StatusOr<std::optional<std::string>> GetForUpdate(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    std::string value;
    rocksdb::Status s =
        txn_->GetForUpdate(rocksdb::ReadOptions(), ToSlice(key), &value, /*exclusive=*/true);
    return ValueOrAbsent(s, std::move(value), "rocksdb get for update");
  }

  Status Scan(std::string_view prefix, std::string_view start_after, size_t limit,
              const std::function<bool(std::string_view, std::string_view)>& fn) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    // Start at the prefix, or at start_after when that lies inside or past it
    // (past it: the loop below stops at once).
    bool from_start_after = !start_after.empty() && start_after >= prefix;
    std::string_view target = from_start_after ? start_after : prefix;
    // The end of the prefix as the iterator's upper bound: RocksDB then
    // stops there instead of stepping over the tombstones of deleted keys
    // that follow (a deleted file's chunks, the entries of removed
    // directories) until it finds a live key past the prefix.
    const std::string bound = PrefixEnd(prefix);
    const rocksdb::Slice bound_slice(bound);
    rocksdb::ReadOptions ro;
    if (!bound.empty()) ro.iterate_upper_bound = &bound_slice;
    std::unique_ptr<rocksdb::Iterator> it(txn_->GetIterator(ro));
    size_t visited = 0;
    for (it->Seek(ToSlice(target)); it->Valid(); it->Next()) {
      std::string_view key = ToView(it->key());
      if (!key.starts_with(prefix)) break;
      if (from_start_after && key == start_after) continue;
      if (!fn(key, ToView(it->value()))) break;
      if (limit != 0 && ++visited >= limit) break;
    }
    return FromRocks(it->status(), "rocksdb scan");
  }

  Status Put(std::string_view key, std::string_view value) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    wrote_ = true;
    return FromRocks(txn_->Put(ToSlice(key), ToSlice(value)), "rocksdb put");
  }

  Status Delete(std::string_view key) override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    wrote_ = true;
    return FromRocks(txn_->Delete(ToSlice(key)), "rocksdb delete");
  }

  Status Commit() override {
    NEEDLEFS_RETURN_IF_ERROR(CheckUsable());
    done_ = true;
    if (!wrote_) {
      // Read-only: nothing to make durable. RocksDB would still append an
      // empty batch to the WAL and, with sync, wait for an fdatasync (about
      // 0.4 ms here) on every lookup. The locks of GetForUpdate kept the
      // reads consistent; releasing them is all a commit has left to do.
      committed_ = true;
      return FromRocks(txn_->Rollback(), "rocksdb release read-only transaction");
    }
    rocksdb::Status s = txn_->Commit();
    committed_ = s.ok();
    return FromRocks(s, "rocksdb commit");
  }

 private:
  Status CheckUsable() const {
    if (done_) return Status::FailedPrecondition("kv transaction used after Commit");
    return Status::OK();
  }

  std::shared_ptr<rocksdb::TransactionDB> db_;
  std::unique_ptr<rocksdb::Transaction> txn_;
  bool done_ = false;       // Commit was called (whatever its result)
  bool committed_ = false;  // Commit succeeded
  bool wrote_ = false;      // a Put or Delete was made
};

class RocksDbKvStore final : public KvStore {
 public:
  RocksDbKvStore(std::shared_ptr<rocksdb::TransactionDB> db, bool sync)
      : db_(std::move(db)),
        log_sync_([this] { return FromRocks(db_->SyncWAL(), "rocksdb sync wal"); }) {
    write_options_.sync = sync;
  }

  using KvStore::Begin;
  std::unique_ptr<KvTransaction> Begin(const TxnOptions& options) override {
    rocksdb::WriteOptions wo = write_options_;
    wo.sync = write_options_.sync && options.sync;
    return std::make_unique<RocksDbKvTransaction>(db_, wo);
  }

  Status SyncLog() override {
    if (!write_options_.sync) return Status::OK();
    // Concurrent callers share one SyncWAL (RocksDB runs them one at a
    // time, each its own fdatasync): every commit this caller made came
    // before its ticket, so any sync that starts after the ticket covers it.
    const uint64_t ticket = log_sync_requests_.fetch_add(1) + 1;
    log_sync_.Issued(ticket);
    return log_sync_.WaitDurable(ticket);
  }

  Status Flush() override {
    NEEDLEFS_RETURN_IF_ERROR(FromRocks(db_->Flush(rocksdb::FlushOptions()), "rocksdb flush"));
    return FromRocks(db_->FlushWAL(/*sync=*/true), "rocksdb flush wal");
  }

 private:
  std::shared_ptr<rocksdb::TransactionDB> db_;
  rocksdb::WriteOptions write_options_;
  std::atomic<uint64_t> log_sync_requests_{0};  // SyncLog tickets handed out
  GroupCommitter log_sync_;                     // SyncLog: a failed sync fails every later one
};

}  // namespace

StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKvStore(const std::string& path,
                                                      const KvOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::IOError("create " + path, ec.value());
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.write_buffer_size = kWriteBufferBytes;
  db_options.IncreaseParallelism(2);
  // Bounded memory whatever the namespace size: index and filter blocks live
  // in the (fixed-size) block cache instead of growing with the data.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  table_options.cache_index_and_filter_blocks = true;
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  // enable_pipelined_write stays off: it is not supported with every
  // TransactionDB write policy, and commits already share WAL syncs through
  // RocksDB's write groups. (Early lock release -- commit unsynced, then a
  // shared SyncWAL before answering -- was measured slower here: SyncWAL
  // serializes against concurrent writers; see bench/RESULTS.md.)

  rocksdb::TransactionDBOptions txn_db_options;
  txn_db_options.transaction_lock_timeout = options.lock_timeout_ms;
  txn_db_options.default_lock_timeout = options.lock_timeout_ms;

  rocksdb::TransactionDB* raw = nullptr;
  NEEDLEFS_RETURN_IF_ERROR(FromRocks(
      rocksdb::TransactionDB::Open(db_options, txn_db_options, path, &raw), "open " + path));
  std::shared_ptr<rocksdb::TransactionDB> db(raw);
  return std::unique_ptr<KvStore>(new RocksDbKvStore(std::move(db), options.sync));
}

}  // namespace needlefs
