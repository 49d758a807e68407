// The index log: append-only 16-byte entries, one per needle write or
// delete, in append order. FROZEN FORMAT (docs/formats.md#index-log):
//
//   offset size field
//   0      8    needle key (LE)
//   8      4    record offset in 8-byte units (LE)
//   12     4    body size (LE); kIndexTombstoneSize marks a delete, whose
//               offset is the tombstone record's
//
// The index log can always be rebuilt from the data file, so it is written
// after the needle and not fsynced per write.
#pragma once

#include <cstdint>
#include <string>

#include "common/types.h"

namespace needlefs {

inline constexpr size_t kIndexEntrySize = 16;
inline constexpr uint32_t kIndexTombstoneSize = 0xFFFFFFFFu;

struct IndexEntry {
  NeedleKey key;
  uint32_t offset_units = 0;
  uint32_t size = 0;
  bool tombstone() const { return size == kIndexTombstoneSize; }
  uint64_t offset_bytes() const { return uint64_t{offset_units} * 8; }
};

void EncodeIndexEntry(const IndexEntry& e, char* out16);
IndexEntry DecodeIndexEntry(const char* p16);

}  // namespace needlefs
