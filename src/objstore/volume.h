// A volume: one append-only data file of needles (`<base>.dat`), its index
// log (`<base>.idx`), an optional RocksDB index (`<base>.ldb/`) and a small
// JSON info file (`<base>.vif`: read-only state and reason). `<base>` is
// `<dir>/<id>` or `<dir>/<collection>_<id>`.
//
// Thread-safety: all public methods are thread-safe. Reads run concurrently
// with each other and with writes; writes (Write/Delete) are serialized by an
// append lock, and their durability waits (group commit) overlap. Compact runs
// beside reads and writes and blocks writers only for the final swap.
//
// Durability (VolumeOptions::durability): `none` acknowledges after the
// write(2) to the page cache; `group` after an fdatasync shared by every write
// that is waiting (group commit); `always` after an fdatasync of its own. The
// data file alone is the durable truth: the index log is rebuilt from it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "common/types.h"
#include "objstore/needle.h"
#include "objstore/needle_map.h"
#include "objstore/superblock.h"

namespace needlefs {

enum class Durability { kNone, kGroup, kAlways };
/// Parses "none", "group", "always". Errors: kInvalidArgument.
StatusOr<Durability> ParseDurability(const std::string& s);
const char* DurabilityName(Durability d);

struct VolumeOptions {
  /// Directory holding the volume files. Required.
  std::string dir;
  VolumeId id;
  /// Collection name ("" = default); part of the file names.
  std::string collection;
  IndexMode index_mode = IndexMode::kMemory;
  Durability durability = Durability::kGroup;
  /// The volume turns read-only once its data file reaches this size.
  /// Default: 30 GiB. At most 32 GiB (8-byte offset units in 32 bits).
  uint64_t size_limit_bytes = 30ull << 30;
  /// For a new volume: its replica placement and TTL (superblock).
  ReplicaPlacement replica_placement;
  uint16_t ttl = 0;
  /// Opens the data file and the index log (also the temporary ones of
  /// creation and compaction); tests pass one that injects faults. Not
  /// owned: it must outlive the volume. Default: Env::Default() (POSIX).
  Env* env = Env::Default();
};

/// A volume's counters, as /status and the master see them.
struct VolumeStats {
  VolumeId id;
  std::string collection;
  uint64_t data_bytes = 0;     ///< data file size
  uint64_t needle_count = 0;   ///< live needles
  uint64_t live_bytes = 0;     ///< record bytes of live needles
  uint64_t deleted_count = 0;  ///< deletes + overwrites since open/compaction
  uint64_t garbage_bytes = 0;  ///< record bytes of dead needles and tombstones
  bool read_only = false;
  std::string read_only_reason;
  uint16_t compaction_revision = 0;
  ReplicaPlacement replica_placement;
  uint16_t ttl = 0;
  uint64_t index_memory_bytes = 0;
  /// Largest needle key the log has held since open (deleted ones
  /// included): a master that lost its state hands out keys above it.
  uint64_t max_key = 0;
  double garbage_ratio() const {
    return data_bytes ? static_cast<double>(garbage_bytes) / static_cast<double>(data_bytes) : 0;
  }
};

/// What a write did.
struct WriteResult {
  uint32_t size = 0;  ///< stored data bytes
  uint32_t data_crc = 0;
};

/// A stretch of a volume's append log (its index log entries and their raw
/// records), read to copy the volume to another server. Records are in log
/// order; replaying them with AppendRecord rebuilds an identical data file.
struct TailBatch {
  uint16_t compaction_revision = 0;  ///< of the files read; a compaction restarts a copy
  ReplicaPlacement replica_placement;
  uint16_t ttl = 0;
  uint64_t next_entry = 0;           ///< the log entry after the last record returned
  uint64_t end_entry = 0;            ///< entries in the log when read (lag = end - next)
  uint64_t bytes = 0;                ///< sum of the records' sizes
  std::vector<std::string> records;  ///< raw needle records (tombstones included)
};

/// One key's latest record in a volume's log (a needle or a tombstone), as
/// anti-entropy compares replicas (see objstore/anti_entropy.h). Offsets are
/// the holder's own: replicas lay out records differently.
struct DigestEntry {
  NeedleKey key;
  uint32_t offset_units = 0;  ///< record offset in 8-byte units
  uint32_t size = 0;          ///< body size; kIndexTombstoneSize for a tombstone
  uint32_t data_crc = 0;      ///< CRC32C of the stored data (0 for a tombstone)
  uint64_t append_at_ns = 0;  ///< when the record was first appended (kept by copies)
  bool tombstone() const { return size == 0xFFFFFFFFu; }
  /// Same content: both tombstones, or needles of equal body size and CRC.
  bool SameContent(const DigestEntry& o) const {
    return tombstone() == o.tombstone() &&
           (tombstone() || (size == o.size && data_crc == o.data_crc));
  }
};

/// Every key's latest record in a volume's log at one moment.
struct VolumeDigest {
  uint16_t compaction_revision = 0;  ///< of the files read
  uint64_t log_entries = 0;          ///< log entries covered: [0, log_entries)
  std::vector<DigestEntry> entries;  ///< sorted by key, one per key
};

/// Progress of a compaction: `done` of `total` live needles copied.
using CompactProgress = std::function<void(uint64_t done, uint64_t total)>;

class GroupCommitter;
struct VolumeFiles;
struct IndexEntry;

class Volume {
 public:
  /// Opens the volume in options.dir, creating it when `create` is true and
  /// no data file exists. Runs recovery (see docs/formats.md#recovery): a torn
  /// tail after the last whole CRC-valid needle is cut; index entries past the
  /// data are dropped; a missing or short index is rebuilt from the data file;
  /// anything ambiguous opens the volume read-only with the reason logged and
  /// shown in stats. Errors: kNotFound (no volume and !create), kCorruption
  /// (unreadable superblock), kInvalidArgument (bad options), IOError.
  static StatusOr<std::unique_ptr<Volume>> Open(const VolumeOptions& options, bool create);
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  /// Appends `n` (key, cookie, data, metadata; append time is set here) and
  /// returns once it is durable per the durability mode. Overwriting an
  /// existing key requires its cookie. Errors: kFailedPrecondition (volume
  /// read-only or full; the write is not stored), kNotFound (cookie of the
  /// existing needle differs), kInvalidArgument (too large),
  /// kResourceExhausted (disk full, ENOSPC) or another IOError, e.g.
  /// kInternal for EIO; an IOError carries the errno as posix_errno() and
  /// its strerror in the message. When the needle itself could not be
  /// written, nothing is stored: its partial bytes are cut from the data
  /// file (should the cut fail too, the next append overwrites them or
  /// recovery cuts them at the next open), and the volume stays writable
  /// after ENOSPC but turns read-only after any other error, until it is
  /// reopened or marked writable. A failure after the needle was written
  /// (index log, fdatasync) turns the volume read-only and leaves the
  /// write's fate open: it may be there after a reopen. Writes acknowledged
  /// before a failure are never affected. `appended`, when given, sees the
  /// record exactly as stored right after it was appended, under the append
  /// lock (so in append order), before the durability wait: replication
  /// sends it to the other replicas while this write waits for its own
  /// durability. It must not block.
  /// `wait_durable` false makes it an unstable write (NFS's UNSTABLE,
  /// RFC 1813 section 3.3.7): it returns once appended -- the record is in
  /// the OS, so it survives kill -9 of the server but not a machine crash --
  /// and SyncAppends() makes it durable.
  using RecordHook = std::function<void(const std::string& record)>;
  StatusOr<WriteResult> Write(Needle n, const RecordHook& appended = nullptr,
                              bool wait_durable = true);
  /// Makes every append so far durable (fdatasync of the data file, shared
  /// with concurrent group commits; the index is rebuilt from the data file
  /// after a crash), in any durability mode, without stopping writers: what
  /// follows unstable writes (NFS COMMIT). Errors: IOError (the volume turns
  /// read-only).
  Status SyncAppends();
  /// Whether an unstable write came after the last SyncAppends.
  bool HasUnstableAppends() const { return unstable_pending_.load(); }

  /// Appends a tombstone for `key` after checking `cookie`. Returns the
  /// stored data size of the deleted needle. `appended` sees the tombstone
  /// record as Write's hook does. Errors: kNotFound (absent or cookie
  /// mismatch), kFailedPrecondition (read-only), IOError.
  StatusOr<uint32_t> Delete(NeedleKey key, Cookie cookie, const RecordHook& appended = nullptr);

  /// Reads and verifies the needle (one pread of the whole record; cookie,
  /// record CRC and data CRC checked). Errors: kNotFound (absent, deleted,
  /// expired by TTL, or cookie mismatch), kCorruption (checksum mismatch;
  /// logged and counted in needlefs_volume_crc_errors_total), IOError.
  StatusOr<Needle> Read(NeedleKey key, Cookie cookie) const;

  /// Chooses the data bytes to read once the stored data size is known:
  /// (offset, length), clipped to the data.
  using RangePicker = std::function<std::pair<uint64_t, uint64_t>(uint64_t data_size)>;
  /// Reads part of a needle's data without reading the rest (three preads:
  /// head, fields and trailer, the range). The record checksum is verified;
  /// the data checksum cannot be (it covers the whole data), so the bytes
  /// returned are unverified. The returned needle has every field but
  /// `data`, which holds only the picked range; *data_size gets the whole
  /// data's size. A gzipped needle comes back with no data at all (its
  /// stored bytes are compressed: read it whole). Errors: as Read.
  StatusOr<Needle> ReadRange(NeedleKey key, Cookie cookie, const RangePicker& pick,
                             uint64_t* data_size) const;

  /// Vacuum: copies live needles into new files while reads and writes go on,
  /// catches up the writes made meanwhile, then swaps atomically under the
  /// append lock. The old data file's space returns to the disk once the last
  /// reader drops it. Read-only volumes can be compacted too. Errors:
  /// kAborted (a compaction is already running), IOError (the old files stay
  /// in use and the partial new files are removed).
  Status Compact(const CompactProgress& progress = nullptr);

  /// Reads the records of log entries [from_entry, ...) as logged when called,
  /// about `max_bytes` of them (at least one when any). `revision` < 0 accepts
  /// any compaction revision; otherwise it must match the files (a compaction
  /// rewrote the log: the copy starts over). Errors: kAborted (revision
  /// changed), kOutOfRange (from_entry past the end), IOError.
  Status ReadTail(uint64_t from_entry, int revision, size_t max_bytes, TailBatch* out) const;

  /// Appends a raw record read from another replica by ReadTail, as it is
  /// (its append time and cookie kept; a tombstone deletes the key), after
  /// verifying its checksums. Durable per the durability mode when it
  /// returns. Errors: kCorruption (bad record), kFailedPrecondition
  /// (read-only), IOError.
  Status AppendRecord(std::string_view record);

  /// Replicated writes, replica side: appends `records` (as the primary's
  /// Write stored them) in order, then waits once for durability. Errors:
  /// as AppendRecord, for the first record that failed (the ones before it
  /// are stored).
  Status AppendRecords(const std::vector<std::string_view>& records);

  /// Anti-entropy, holder side: the latest record of every key in the log
  /// (tombstones since the last compaction included). Costs one pass over
  /// the index log and one 12-byte pread per key; memory 24 bytes per log
  /// entry while it runs. Errors: IOError, kCorruption (an index entry
  /// points past the data).
  Status Digest(VolumeDigest* out) const;

  /// Anti-entropy, holder side: the raw record of `key` at `offset_units`
  /// (from a Digest of compaction revision `revision`) into `*out`.
  /// Errors: kAborted (the volume was compacted since), kNotFound (no
  /// record of that key there), IOError.
  Status ReadRecordAt(NeedleKey key, uint32_t offset_units, int revision, std::string* out) const;

  /// What AppendRecordIfUnchanged has looked at during one round: the log
  /// entries scanned so far and the keys they touched. Start it with
  /// `scanned` = the digest's log_entries; each call scans only the entries
  /// appended since the previous one.
  struct UnchangedSince {
    uint64_t scanned = 0;
    std::unordered_set<uint64_t> touched;
  };

  /// Anti-entropy, receiving side: AppendRecord, but only when this
  /// volume's log has not touched the record's key since entry
  /// `since->scanned` (initially the local Digest the caller compared
  /// against) of compaction revision `revision`. Returns true when
  /// appended, false when the key changed meanwhile (nothing written; the
  /// next round decides again). Errors: as AppendRecord, kAborted
  /// (compacted since the digest).
  StatusOr<bool> AppendRecordIfUnchanged(std::string_view record, int revision,
                                         UnchangedSince* since);

  /// Number of entries in the index log (= records appended since creation
  /// or the last compaction).
  uint64_t log_entries() const;

  /// Marks the volume read-only (persisted in the .vif file) or writable
  /// again. A full volume can't be made writable. Errors: IOError,
  /// kFailedPrecondition.
  Status SetReadOnly(bool read_only, const std::string& reason = "marked by command");

  /// Closes and removes every file of the volume. The object must not be
  /// used afterwards except for destruction.
  Status Destroy();

  /// Flushes the index and syncs the data file (clean shutdown).
  Status Sync();

  VolumeStats Stats() const;
  /// The placement code from the superblock (cheap: for per-request use).
  ReplicaPlacement replica_placement() const;
  VolumeId id() const { return options_.id; }
  const std::string& collection() const { return options_.collection; }
  bool read_only() const { return read_only_.load(); }
  /// Number of fdatasync calls made for writes (tests check group commit).
  uint64_t sync_count() const;
  /// Path prefix of the volume's files ("<dir>/<collection>_<id>").
  const std::string& base_path() const { return base_; }

 private:
  explicit Volume(const VolumeOptions& options);
  using Files = VolumeFiles;  // data file + index log + map, swapped by compaction

  Status Create();
  Status Load();
  /// kNotFound when a reader with `cookie` may not see `n` (cookie
  /// mismatch, tombstone, TTL expired).
  Status CheckReadable(const Needle& n, Cookie cookie) const;
  /// The files (pinned against a compaction's swap) and the record of
  /// `key` in them, as of now. Errors: kNotFound (volume deleted, no such
  /// key).
  StatusOr<std::pair<std::shared_ptr<Files>, NeedleLocation>> Locate(NeedleKey key) const;
  /// `read` (a pread of the record of `key` at `offset`), with a short read
  /// (kOutOfRange) turned into a logged and counted kCorruption.
  Status Checked(const Status& read, NeedleKey key, uint64_t offset) const;
  /// A needle's record without its data: what the data is to be read
  /// from. The head, fields and trailer are read and checked (key, sizes,
  /// record CRC; `needle.data_crc` is the stored data CRC), not the cookie.
  struct RecordWithoutData {
    std::shared_ptr<Files> files;  // pinned against a compaction's swap
    uint64_t record_offset = 0;    // bytes into the data file; the data follows the head
    uint32_t data_size = 0;
    Needle needle;
  };
  /// Errors: as Locate; kCorruption (logged and counted).
  StatusOr<RecordWithoutData> ReadWithoutData(NeedleKey key) const;
  Status LoadIndex(Files* f, uint64_t data_size, uint64_t* max_end);
  Status RecoverTail(Files* f, uint64_t start, uint64_t data_size);
  Status ApplyEntry(Files* f, const IndexEntry& e, uint64_t applied, bool count_stats);
  Status AppendLocked(Files* f, const std::string& record, const IndexEntry& e);
  /// AppendRecord and AppendRecordIfUnchanged (`since` null:
  /// unconditional).
  StatusOr<bool> AppendRaw(std::string_view record, int revision, UnchangedSince* since);
  /// AppendRaw without the durability wait: `*seq` is what to wait for (0
  /// when nothing was appended).
  StatusOr<bool> AppendRawNoWait(std::string_view record, int revision, UnchangedSince* since,
                                 uint64_t* seq);
  /// After an append (append lock held): numbers the write for group
  /// commit, or syncs now in `always` mode. Returns the sequence number.
  StatusOr<uint64_t> IssueLocked(Files* f);
  Status WaitDurable(uint64_t seq);
  /// Appends an index entry for a needle found in the data during recovery.
  Status IndexRecovered(Files* f, const IndexEntry& e);
  Status OpenMap(Files* f, const std::string& path, uint16_t revision);
  void MarkBroken(const std::string& reason);
  Status PersistInfo();
  std::shared_ptr<Files> files() const;

  const VolumeOptions options_;
  const std::string base_;
  SuperBlock super_block_;

  std::mutex append_mu_;          // serializes appends; held across pwrite
  mutable std::shared_mutex mu_;  // guards files_ and the stats below
  std::shared_ptr<Files> files_;  // GUARDED_BY(mu_) (pointer swap)
  uint64_t live_bytes_ = 0;       // GUARDED_BY(mu_)
  uint64_t garbage_bytes_ = 0;    // GUARDED_BY(mu_)
  uint64_t deleted_count_ = 0;    // GUARDED_BY(mu_)

  std::atomic<bool> read_only_{false};
  std::atomic<bool> full_{false};
  std::string read_only_reason_;  // GUARDED_BY(mu_)
  std::atomic<bool> compacting_{false};
  std::atomic<uint64_t> max_key_{0};  // see VolumeStats::max_key
  void NoteKey(NeedleKey k) {
    uint64_t cur = max_key_.load();
    while (k.value > cur && !max_key_.compare_exchange_weak(cur, k.value)) {
    }
  }
  std::atomic<uint64_t> write_seq_{0};
  std::unique_ptr<GroupCommitter> committer_;
  std::atomic<bool> unstable_pending_{false};  // an unstable write since the last SyncAppends
};

}  // namespace needlefs
