// Anti-entropy, volume side: the digest of a volume's log (every key's latest
// record with its size, data CRC and append time) and single-record reads by
// offset. The comparison and the pulling live in objstore/anti_entropy.cc.
#include <algorithm>

#include "common/endian.h"
#include "objstore/index_file.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {

Status Volume::Digest(VolumeDigest* out) const {
  std::shared_ptr<VolumeFiles> f;
  {
    std::shared_lock l(mu_);
    f = files_;
    out->compaction_revision = super_block_.compaction_revision;
  }
  const uint64_t end = f->index_entries.load();
  const uint64_t data_end = f->data_end.load();
  out->log_entries = end;
  out->entries.clear();
  // (key, log position, entry): sorted, the last of each key is its latest.
  struct Logged {
    uint64_t key;
    uint64_t pos;
    IndexEntry e;
  };
  std::vector<Logged> all;
  all.reserve(end);
  std::string ebuf;
  for (uint64_t next = 0; next < end;) {
    const uint64_t n = std::min<uint64_t>(end - next, 4096);
    ebuf.resize(n * kIndexEntrySize);
    NEEDLEFS_RETURN_IF_ERROR(f->index->ReadAt(next * kIndexEntrySize, ebuf.data(), ebuf.size()));
    for (uint64_t i = 0; i < n; ++i) {
      const IndexEntry e = DecodeIndexEntry(ebuf.data() + i * kIndexEntrySize);
      all.push_back({e.key.value, next + i, e});
    }
    next += n;
  }
  std::sort(all.begin(), all.end(), [](const Logged& a, const Logged& b) {
    return a.key != b.key ? a.key < b.key : a.pos < b.pos;
  });
  for (size_t i = 0; i < all.size(); ++i) {
    if (i + 1 < all.size() && all[i + 1].key == all[i].key) continue;
    const IndexEntry& e = all[i].e;
    const uint32_t body = e.tombstone() ? kTombstoneBodySize : e.size;
    // The trailer's data_crc and append_at_ns follow the body.
    const uint64_t at = e.offset_bytes() + kNeedleHeaderSize + body;
    if (at + 12 > data_end) {
      return Status::Corruption("volume " + std::to_string(options_.id.value) + ": needle " +
                                std::to_string(e.key.value) + " indexed past the data");
    }
    char t[12];
    NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(at, t, sizeof(t)));
    DigestEntry d;
    d.key = e.key;
    d.offset_units = e.offset_units;
    d.size = e.size;
    d.data_crc = e.tombstone() ? 0 : DecodeFixed32(t);
    d.append_at_ns = DecodeFixed64(t + 4);
    out->entries.push_back(d);
  }
  return Status::OK();
}

Status Volume::ReadRecordAt(NeedleKey key, uint32_t offset_units, int revision,
                            std::string* out) const {
  std::shared_ptr<VolumeFiles> f;
  uint16_t current;
  {
    std::shared_lock l(mu_);
    f = files_;
    current = super_block_.compaction_revision;
  }
  if (revision != current) {
    return Status::Aborted("volume " + std::to_string(options_.id.value) +
                           " was compacted since the digest");
  }
  const uint64_t at = uint64_t{offset_units} * kNeedleAlignment;
  const uint64_t end = f->data_end.load();
  auto missing = [&] {
    return Status::NotFound("volume " + std::to_string(options_.id.value) + " has no record of " +
                            std::to_string(key.value) + " at " + std::to_string(at));
  };
  if (at + kNeedleHeaderSize > end) return missing();
  char h[kNeedleHeaderSize];
  NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(at, h, sizeof(h)));
  const NeedleHeader header = DecodeNeedleHeader(h);
  if (header.key != key || at + NeedleRecordSize(header.body_size) > end) return missing();
  out->resize(NeedleRecordSize(header.body_size));
  return f->data->ReadAt(at, out->data(), out->size());
}

}  // namespace needlefs
