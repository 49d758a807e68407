// The small transactional key-value interface the namespace runs on. Engines:
// RocksDB (embedded default, rocksdb_kv_store.cc) and memory (tests,
// memory_kv_store.cc); a distributed engine can plug in behind the same
// interface. Every engine passes the typed suite in tests/metadata/kv_store_test.cc.
//
// Semantics (what the namespace relies on):
//  - A transaction sees its own writes (Get and Scan merge them).
//  - GetForUpdate(k) makes the transaction conflict with any other
//    transaction that writes k before this one commits: Commit (or a later
//    GetForUpdate) returns kAborted and the caller redoes the whole
//    read-modify-write (RunTransaction does that). Engines may detect the
//    conflict early by locking (pessimistic) or at commit (optimistic).
//  - Plain Get/Scan read committed data without conflict tracking.
//  - Commit is atomic. A synced commit (KvOptions::sync and TxnOptions::sync)
//    is durable -- WAL fsynced, the sync shared by concurrent commits --
//    before it returns, so it survives a machine crash. An unsynced commit
//    returns once the WAL is written to the OS: it survives kill -9 of the
//    process, not a machine crash, until a later synced commit or SyncLog.
//
// Thread-safety: a KvStore is thread-safe; a KvTransaction belongs to one
// thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

class KvTransaction {
 public:
  virtual ~KvTransaction() = default;

  /// The value of `key`, or nullopt. Errors: IOError, kCorruption.
  virtual StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  /// As Get, and conflicts with concurrent writers of `key` (see above).
  /// Errors: kAborted (conflict or lock timeout: redo the transaction).
  virtual StatusOr<std::optional<std::string>> GetForUpdate(std::string_view key) = 0;
  /// Calls fn(key, value) for keys with `prefix`, in ascending byte order,
  /// starting after `start_after` (or at the prefix when empty), until fn
  /// returns false or `limit` keys were visited (0 = no limit).
  virtual Status Scan(std::string_view prefix, std::string_view start_after, size_t limit,
                      const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view key) = 0;
  /// Makes every Put/Delete visible atomically. Errors: kAborted
  /// (conflict: nothing was written), IOError. The transaction cannot be
  /// used afterwards.
  virtual Status Commit() = 0;
};

struct KvOptions {
  /// Sync the write-ahead log on every commit (concurrent commits share the
  /// sync). Off only for tests and benchmarks of the non-durable case.
  /// Default: true.
  bool sync = true;
  /// How long a pessimistic engine waits for a lock before kAborted.
  /// Default: 1000 ms.
  int lock_timeout_ms = 1000;
};

/// Settings of one transaction.
struct TxnOptions {
  /// Whether Commit waits for the WAL fsync (when the store syncs at all,
  /// KvOptions::sync). false: Commit returns once the WAL is written; the
  /// change survives kill -9 of the process but not a machine crash until a
  /// later synced commit or SyncLog. Default: true.
  bool sync = true;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  std::unique_ptr<KvTransaction> Begin() { return Begin(TxnOptions{}); }
  virtual std::unique_ptr<KvTransaction> Begin(const TxnOptions& options) = 0;
  /// Makes every commit so far durable (fsyncs the WAL; a no-op when the
  /// store does not sync, KvOptions::sync false). Concurrent callers may
  /// share one fsync. Errors: IOError (RocksDB: once a sync failed, every
  /// later SyncLog fails too).
  virtual Status SyncLog() = 0;
  /// Flushes memtables and the log (clean shutdown).
  virtual Status Flush() = 0;
};

/// Opens (creating) a RocksDB TransactionDB in directory `path`.
/// Errors: IOError, kCorruption.
StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKvStore(const std::string& path,
                                                      const KvOptions& options = {});
/// A new, empty in-memory store (nothing persists).
std::unique_ptr<KvStore> NewMemoryKvStore();

/// Runs fn(txn) and commits, redoing both while they fail with kAborted (at
/// most `max_attempts` times, with a short randomized backoff). Returns the
/// first other error, or kAborted when every attempt conflicted.
Status RunTransaction(KvStore& store, const std::function<Status(KvTransaction&)>& fn,
                      int max_attempts = 64);
/// As above, each attempt begun with `options`.
Status RunTransaction(KvStore& store, const TxnOptions& options,
                      const std::function<Status(KvTransaction&)>& fn, int max_attempts = 64);

}  // namespace needlefs
