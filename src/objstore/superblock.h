// The volume superblock: the first 16 bytes of every data file. FROZEN
// FORMAT, see docs/formats.md#superblock. Little-endian.
//
//   offset size field
//   0      4    magic "NDLV"
//   4      1    format version (kSuperBlockVersion)
//   5      1    replica placement, SeaweedFS "xyz" as the number x*100+y*10+z
//   6      2    ttl (Ttl::Encode of needle.h), 0 = none
//   8      2    compaction revision, +1 on every vacuum
//   10     2    reserved, zero
//   12     4    CRC32C of bytes 0..11
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace needlefs {

inline constexpr size_t kSuperBlockSize = 16;
inline constexpr uint8_t kSuperBlockVersion = 1;

/// SeaweedFS's replica placement "xyz": x copies in other data centers, y in
/// other racks of the same data center, z on other servers of the same rack.
struct ReplicaPlacement {
  uint8_t diff_dc = 0;
  uint8_t diff_rack = 0;
  uint8_t same_rack = 0;

  /// Parses "000".."999" (or "" = "000"). Errors: kInvalidArgument.
  static StatusOr<ReplicaPlacement> Parse(std::string_view s);
  static ReplicaPlacement FromByte(uint8_t b);
  uint8_t ToByte() const {
    return static_cast<uint8_t>(diff_dc * 100 + diff_rack * 10 + same_rack);
  }
  std::string ToString() const;
  /// Total number of copies (1 + x + y + z).
  int CopyCount() const { return 1 + diff_dc + diff_rack + same_rack; }
};

struct SuperBlock {
  uint8_t version = kSuperBlockVersion;
  ReplicaPlacement replica_placement;
  uint16_t ttl = 0;
  uint16_t compaction_revision = 0;

  /// The 16 bytes as stored.
  std::string Encode() const;
  /// Errors: kCorruption for a bad magic, checksum or unknown version.
  static StatusOr<SuperBlock> Decode(std::string_view bytes);
};

}  // namespace needlefs
