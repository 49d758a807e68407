// The needle index of one volume: needle key -> (offset, size). The durable
// source of truth is the volume's append-only index log (index_file.h); a
// NeedleMap is the lookup structure built from it. Two engines:
//
//  - memory (default): sorted fixed-size segments of 16-byte entries plus a
//    small overflow for out-of-order keys; ~16 bytes per needle (see
//    docs/formats.md#in-memory-index). Loaded from the index log at open.
//  - rocksdb: an embedded RocksDB beside the volume for volumes too large
//    for memory (SeaweedFS's "leveldb" modes). It remembers how many index
//    log entries it has applied and replays only the rest at open.
//
// Thread-safety: Get and ForEach may run concurrently with each other; any
// mutation needs exclusive access (the Volume's lock provides both).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

/// Where a live needle is: its record offset in 8-byte units and its body
/// size (needle.h). A needle's record is NeedleRecordSize(size) bytes.
struct NeedleLocation {
  uint32_t offset_units = 0;
  uint32_t size = 0;
  uint64_t offset_bytes() const { return uint64_t{offset_units} * 8; }
};

enum class IndexMode { kMemory, kRocksDb };

/// Parses "memory" or "rocksdb" (also SeaweedFS's "leveldb"). Errors:
/// kInvalidArgument.
StatusOr<IndexMode> ParseIndexMode(const std::string& s);

class NeedleMap {
 public:
  virtual ~NeedleMap() = default;

  /// The live location of `key`, or nullopt when absent or deleted.
  virtual std::optional<NeedleLocation> Get(NeedleKey key) const = 0;
  /// Inserts or replaces. `applied_entries` is the count of index log
  /// entries applied including this one (RocksDB persists it for replay).
  virtual Status Put(NeedleKey key, NeedleLocation loc, uint64_t applied_entries) = 0;
  /// Removes `key` (no error when absent).
  virtual Status Delete(NeedleKey key, uint64_t applied_entries) = 0;
  /// Calls `fn` for every live entry in key order until it returns false.
  virtual Status ForEach(const std::function<bool(NeedleKey, NeedleLocation)>& fn) const = 0;
  /// Number of live entries.
  virtual uint64_t Count() const = 0;
  /// Index log entries already reflected (RocksDB); 0 for memory maps.
  virtual uint64_t AppliedEntries() const = 0;
  /// Approximate heap bytes held.
  virtual uint64_t MemoryBytes() const = 0;
  /// Makes the state durable where the engine persists (RocksDB flush).
  virtual Status Flush() = 0;
};

/// A new empty in-memory map.
std::unique_ptr<NeedleMap> NewMemoryNeedleMap();

/// Opens (creating if missing) a RocksDB map in directory `path`.
/// `revision` is the volume's compaction revision; a map built for another
/// revision is wiped and rebuilt by replay. Errors: IOError / kCorruption.
StatusOr<std::unique_ptr<NeedleMap>> OpenRocksDbNeedleMap(const std::string& path,
                                                          uint16_t revision);

}  // namespace needlefs
