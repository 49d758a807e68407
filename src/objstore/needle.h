// The needle: one blob record in a volume's data file. FROZEN FORMAT — the
// byte layout below is persisted; flag values are never renumbered. See
// docs/formats.md#needle. All integers are little-endian.
//
//   offset        size  field
//   0             4     cookie          random, checked on every read
//   4             8     key             needle key, unique in the volume
//   12            4     body_size       bytes in the body (below)
//   16            body_size body:
//                   4     data_size
//                   data_size data      stored bytes (gzip-compressed if kFlagGzip)
//                   1     flags         kFlag* bits
//                   [1+n] name          if kFlagHasName: length byte, bytes
//                   [1+n] mime          if kFlagHasMime: length byte, bytes
//                   [8]   last_modified if kFlagHasLastModified: unix seconds
//                   [2]   ttl           if kFlagHasTtl: Ttl::Encode()
//   16+body_size  4     data_crc        CRC32C of the stored data bytes
//   +4            8     append_at_ns    wall clock when appended (ns since epoch)
//   +12           4     record_crc      CRC32C over header, body except data,
//                                       data_crc and append_at_ns (the data is
//                                       covered by data_crc)
//   ...           0-7   zero padding to a multiple of 8 bytes
//
// A tombstone (delete marker) is a needle with kFlagDeleted and no data.
// Records start at multiples of 8 bytes so an offset fits in 32 bits of
// 8-byte units (a volume can reach 32 GiB).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/types.h"

namespace needlefs {

inline constexpr size_t kNeedleHeaderSize = 16;
inline constexpr size_t kNeedleTrailerSize = 16;
/// The header plus data_size: what a reader needs to find the data's end.
inline constexpr size_t kNeedleHeadSize = kNeedleHeaderSize + 4;
inline constexpr size_t kNeedleAlignment = 8;
/// Largest data a needle can hold (bounded so body_size fits in 32 bits).
inline constexpr uint64_t kMaxNeedleDataSize = 0xFFFF'FF00u;

enum NeedleFlags : uint8_t {
  kFlagDeleted = 0x01,
  kFlagHasName = 0x02,
  kFlagHasMime = 0x04,
  kFlagHasLastModified = 0x08,
  kFlagHasTtl = 0x10,
  kFlagGzip = 0x20,  ///< data is gzip-compressed; served with Content-Encoding
};

/// An in-memory needle. `data` holds the stored (possibly compressed) bytes.
struct Needle {
  Cookie cookie;
  NeedleKey key;
  uint8_t flags = 0;  ///< kFlag* bits; Has* bits are derived by EncodeNeedle
  std::string data;
  std::string name;  ///< up to 255 bytes
  std::string mime;  ///< up to 255 bytes
  uint64_t last_modified_s = 0;
  uint16_t ttl = 0;           ///< Ttl::Encode() value, 0 = none
  uint32_t data_crc = 0;      ///< set by EncodeNeedle / DecodeNeedle
  uint64_t append_at_ns = 0;  ///< set by the writer before encoding

  bool deleted() const { return flags & kFlagDeleted; }
  bool gzipped() const { return flags & kFlagGzip; }
};

/// Header fields of a record, readable before the rest.
struct NeedleHeader {
  Cookie cookie;
  NeedleKey key;
  uint32_t body_size = 0;
};

/// Total bytes on disk of a record whose body is `body_size` bytes, padding
/// included.
constexpr uint64_t NeedleRecordSize(uint32_t body_size) {
  uint64_t n = kNeedleHeaderSize + uint64_t{body_size} + kNeedleTrailerSize;
  return (n + kNeedleAlignment - 1) / kNeedleAlignment * kNeedleAlignment;
}

/// Body size of the tombstone record every delete appends.
inline constexpr uint32_t kTombstoneBodySize = 5;

/// Encodes `n` into a full record (padded). Computes data_crc (also stored
/// back into `n`). Errors: kInvalidArgument when name/mime exceed 255 bytes
/// or data exceeds kMaxNeedleDataSize.
StatusOr<std::string> EncodeNeedle(Needle& n);

/// Parses the 16-byte header at `p`.
NeedleHeader DecodeNeedleHeader(const char* p);

/// Decodes a whole record (as EncodeNeedle wrote it; padding optional) and
/// verifies record_crc and data_crc. Errors: kCorruption naming what failed.
StatusOr<Needle> DecodeNeedle(std::string_view record);

/// Decodes a record without reading its data, for range reads: `head` is
/// the record's first kNeedleHeadSize bytes, `tail` the bytes after the
/// data through the trailer. Verifies record_crc (it covers everything but
/// the data); `data` stays empty and `data_crc` holds the stored value,
/// unverified (it covers the whole data). Errors: kCorruption.
StatusOr<Needle> DecodeNeedleWithoutData(std::string_view head, std::string_view tail);

/// Time-to-live as SeaweedFS encodes it: a count and a unit (m, h, d, w, M,
/// y), in two bytes (count, unit). 0 means none.
struct Ttl {
  /// Parses "3m", "4h", "5d", "6w", "7M", "8y" or "" (none). Errors:
  /// kInvalidArgument.
  static StatusOr<uint16_t> Parse(std::string_view s);
  /// Formats an encoded TTL back ("" for 0).
  static std::string ToString(uint16_t ttl);
  /// The TTL in seconds (0 for none).
  static uint64_t Seconds(uint16_t ttl);
};

}  // namespace needlefs
