// Codecs of the namespace's KV values (internal/keys.h).
#include "metadata/internal/keys.h"

#include "common/endian.h"

namespace needlefs::meta_keys {
namespace {

constexpr uint8_t kInodeRecordVersion = 1;
// version 1, type 1, mode 4, uid 4, gid 4, nlink 4, generation 8, size 8,
// atime 8, mtime 8, ctime 8, rdev 8, parent 8, next_cookie 8, next_chunk 8
constexpr size_t kInodeFixed = 1 + 1 + 4 * 4 + 8 * 9;

}  // namespace

std::string InodeRecord::Encode() const {
  std::string v(kInodeFixed, '\0');
  char* p = v.data();
  p[0] = static_cast<char>(kInodeRecordVersion);
  p[1] = static_cast<char>(attr.type);
  EncodeFixed32(p + 2, attr.mode);
  EncodeFixed32(p + 6, attr.uid);
  EncodeFixed32(p + 10, attr.gid);
  EncodeFixed32(p + 14, attr.nlink);
  EncodeFixed64(p + 18, attr.generation.value);
  EncodeFixed64(p + 26, attr.size);
  EncodeFixed64(p + 34, static_cast<uint64_t>(attr.atime_ns));
  EncodeFixed64(p + 42, static_cast<uint64_t>(attr.mtime_ns));
  EncodeFixed64(p + 50, static_cast<uint64_t>(attr.ctime_ns));
  EncodeFixed64(p + 58, attr.rdev);
  EncodeFixed64(p + 66, parent.value);
  EncodeFixed64(p + 74, next_cookie);
  EncodeFixed64(p + 82, next_chunk_seq);
  v += target;
  return v;
}

StatusOr<InodeRecord> InodeRecord::Decode(std::string_view v) {
  if (v.size() < kInodeFixed || static_cast<uint8_t>(v[0]) != kInodeRecordVersion) {
    return Status::Corruption("bad inode record");
  }
  const char* p = v.data();
  InodeRecord r;
  r.attr.type = static_cast<FileType>(p[1]);
  r.attr.mode = DecodeFixed32(p + 2);
  r.attr.uid = DecodeFixed32(p + 6);
  r.attr.gid = DecodeFixed32(p + 10);
  r.attr.nlink = DecodeFixed32(p + 14);
  r.attr.generation = Generation(DecodeFixed64(p + 18));
  r.attr.size = DecodeFixed64(p + 26);
  r.attr.atime_ns = static_cast<int64_t>(DecodeFixed64(p + 34));
  r.attr.mtime_ns = static_cast<int64_t>(DecodeFixed64(p + 42));
  r.attr.ctime_ns = static_cast<int64_t>(DecodeFixed64(p + 50));
  r.attr.rdev = DecodeFixed64(p + 58);
  r.parent = InodeId(DecodeFixed64(p + 66));
  r.next_cookie = DecodeFixed64(p + 74);
  r.next_chunk_seq = DecodeFixed64(p + 82);
  r.target.assign(v.substr(kInodeFixed));
  return r;
}

std::string DentryValue::Encode() const {
  std::string v(17, '\0');
  EncodeFixed64(v.data(), ino.value);
  v[8] = static_cast<char>(type);
  EncodeFixed64(v.data() + 9, cookie);
  return v;
}

StatusOr<DentryValue> DentryValue::Decode(std::string_view v) {
  if (v.size() != 17) return Status::Corruption("bad dentry value");
  DentryValue d;
  d.ino = InodeId(DecodeFixed64(v.data()));
  d.type = static_cast<FileType>(v[8]);
  d.cookie = DecodeFixed64(v.data() + 9);
  return d;
}

std::string EncodeChunk(const Chunk& c) {
  std::string v(24, '\0');
  EncodeFixed64(v.data(), c.offset);
  EncodeFixed64(v.data() + 8, c.size);
  EncodeFixed64(v.data() + 16, c.blob_offset);
  // Inline: a NUL (no file id starts with one), then the bytes.
  if (c.is_inline()) return v + '\0' + c.data;
  return v + c.file_id.ToString();
}

StatusOr<Chunk> DecodeChunk(std::string_view v) {
  if (v.size() < 24) return Status::Corruption("bad chunk record");
  Chunk c;
  c.offset = DecodeFixed64(v.data());
  c.size = DecodeFixed64(v.data() + 8);
  c.blob_offset = DecodeFixed64(v.data() + 16);
  if (v.size() > 24 && v[24] == '\0') {
    c.data.assign(v.substr(25));
    if (c.data.size() != c.size || c.size == 0 || c.blob_offset != 0) {
      return Status::Corruption("bad inline chunk record");
    }
    return c;
  }
  auto fid = FileId::Parse(v.substr(24));
  if (!fid.ok()) {
    return Status::Corruption("bad chunk record: " + std::string(fid.status().message()));
  }
  c.file_id = *fid;
  return c;
}

}  // namespace needlefs::meta_keys
