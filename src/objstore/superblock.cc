#include "objstore/superblock.h"

#include "common/crc32c.h"
#include "common/endian.h"

namespace needlefs {

StatusOr<ReplicaPlacement> ReplicaPlacement::Parse(std::string_view s) {
  if (s.empty()) return ReplicaPlacement{};
  if (s.size() != 3)
    return Status::InvalidArgument("replica placement must be 3 digits: " + std::string(s));
  for (char c : s) {
    if (c < '0' || c > '9')
      return Status::InvalidArgument("bad replica placement: " + std::string(s));
  }
  return ReplicaPlacement{static_cast<uint8_t>(s[0] - '0'), static_cast<uint8_t>(s[1] - '0'),
                          static_cast<uint8_t>(s[2] - '0')};
}

ReplicaPlacement ReplicaPlacement::FromByte(uint8_t b) {
  return ReplicaPlacement{static_cast<uint8_t>(b / 100), static_cast<uint8_t>(b / 10 % 10),
                          static_cast<uint8_t>(b % 10)};
}

std::string ReplicaPlacement::ToString() const {
  return std::string{static_cast<char>('0' + diff_dc), static_cast<char>('0' + diff_rack),
                     static_cast<char>('0' + same_rack)};
}

std::string SuperBlock::Encode() const {
  std::string out(kSuperBlockSize, '\0');
  char* p = out.data();
  p[0] = 'N';
  p[1] = 'D';
  p[2] = 'L';
  p[3] = 'V';
  p[4] = static_cast<char>(version);
  p[5] = static_cast<char>(replica_placement.ToByte());
  EncodeFixed16(p + 6, ttl);
  EncodeFixed16(p + 8, compaction_revision);
  EncodeFixed32(p + 12, Crc32c(p, 12));
  return out;
}

StatusOr<SuperBlock> SuperBlock::Decode(std::string_view b) {
  if (b.size() < kSuperBlockSize) return Status::Corruption("superblock truncated");
  if (b.substr(0, 4) != "NDLV") return Status::Corruption("superblock magic is not NDLV");
  if (DecodeFixed32(b.data() + 12) != Crc32c(b.data(), 12)) {
    return Status::Corruption("superblock checksum mismatch");
  }
  SuperBlock sb;
  sb.version = static_cast<uint8_t>(b[4]);
  if (sb.version != kSuperBlockVersion) {
    return Status::Corruption("unknown volume format version " + std::to_string(sb.version));
  }
  sb.replica_placement = ReplicaPlacement::FromByte(static_cast<uint8_t>(b[5]));
  sb.ttl = DecodeFixed16(b.data() + 6);
  sb.compaction_revision = DecodeFixed16(b.data() + 8);
  return sb;
}

}  // namespace needlefs
