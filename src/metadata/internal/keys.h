// Private to src/metadata: the KV key layout and value codecs of the
// namespace. FROZEN FORMAT, see docs/formats.md#metadata-keys. Integers in
// keys are big-endian so that byte order is numeric order; values are
// little-endian.
//
//   I <ino:8>                      -> InodeRecord
//   D <parent:8> <name>            -> child ino:8 LE, type:1, cookie:8 LE
//   C <parent:8> <cookie:8>        -> name
//   X <ino:8> <name>               -> xattr value
//   K <ino:8> <seq:8>              -> chunk: offset:8 size:8 blob_offset:8 file_id (text)
//   G <seq:8>                      -> file id (text) of a blob to delete (garbage queue)
//   S <shard:1>                    -> stat counters (64 shards): inodes:8 (i64) bytes:8 (i64)
//   L <session:8>                  -> lease end ns:8 LE, client name
//   O <ino:8> <session:8>          -> "" (ino is open in session)
//   Q <session:8> <ino:8>          -> "" (the same, by session)
//   U <ino:8>                      -> "" (unlinked inode kept while open)
//   M next_inode / M next_garbage  -> u64 counters (allocated in batches)
//   M rename                       -> lock key for cross-directory directory renames
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "metadata/namespace.h"

namespace needlefs::meta_keys {

inline void AppendBE64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
inline uint64_t ReadBE64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[static_cast<size_t>(i)]);
  return v;
}

inline std::string Inode(InodeId ino) {
  std::string k(1, 'I');
  AppendBE64(&k, ino.value);
  return k;
}
inline std::string DentryPrefix(InodeId parent) {
  std::string k(1, 'D');
  AppendBE64(&k, parent.value);
  return k;
}
inline std::string Dentry(InodeId parent, std::string_view name) {
  return DentryPrefix(parent) + std::string(name);
}
inline std::string CookiePrefix(InodeId parent) {
  std::string k(1, 'C');
  AppendBE64(&k, parent.value);
  return k;
}
inline std::string Cookie(InodeId parent, uint64_t cookie) {
  std::string k = CookiePrefix(parent);
  AppendBE64(&k, cookie);
  return k;
}
inline std::string XattrPrefix(InodeId ino) {
  std::string k(1, 'X');
  AppendBE64(&k, ino.value);
  return k;
}
inline std::string Xattr(InodeId ino, std::string_view name) {
  return XattrPrefix(ino) + std::string(name);
}
inline std::string ChunkPrefix(InodeId ino) {
  std::string k(1, 'K');
  AppendBE64(&k, ino.value);
  return k;
}
inline std::string ChunkKey(InodeId ino, uint64_t seq) {
  std::string k = ChunkPrefix(ino);
  AppendBE64(&k, seq);
  return k;
}
inline std::string Garbage(uint64_t seq) {
  std::string k(1, 'G');
  AppendBE64(&k, seq);
  return k;
}
inline std::string Session(uint64_t session) {
  std::string k(1, 'L');
  AppendBE64(&k, session);
  return k;
}
inline std::string OpenPrefix(InodeId ino) {
  std::string k(1, 'O');
  AppendBE64(&k, ino.value);
  return k;
}
inline std::string Open(InodeId ino, uint64_t session) {
  std::string k = OpenPrefix(ino);
  AppendBE64(&k, session);
  return k;
}
inline std::string HeldPrefix(uint64_t session) {
  std::string k(1, 'Q');
  AppendBE64(&k, session);
  return k;
}
inline std::string Held(uint64_t session, InodeId ino) {
  std::string k = HeldPrefix(session);
  AppendBE64(&k, ino.value);
  return k;
}
inline std::string Unlinked(InodeId ino) {
  std::string k(1, 'U');
  AppendBE64(&k, ino.value);
  return k;
}
inline const std::string kNextSession = "Mnext_session";
inline std::string StatShard(uint8_t shard) { return std::string{'S', static_cast<char>(shard)}; }
inline constexpr int kStatShards = 64;
inline const std::string kNextInode = "Mnext_inode";
inline const std::string kNextGarbage = "Mnext_garbage";
inline const std::string kRenameLock = "Mrename";

/// The stored form of an inode.
struct InodeRecord {
  InodeAttr attr;
  InodeId parent;               ///< directories: the parent directory
  uint64_t next_cookie = 0;     ///< directories: next entry cookie
  uint64_t next_chunk_seq = 0;  ///< regular files: next chunk sequence
  std::string target;           ///< symlinks: the target

  std::string Encode() const;
  /// Errors: kCorruption.
  static StatusOr<InodeRecord> Decode(std::string_view v);
};

struct DentryValue {
  InodeId ino;
  FileType type = FileType::kRegular;
  uint64_t cookie = 0;
  std::string Encode() const;
  static StatusOr<DentryValue> Decode(std::string_view v);
};

/// The file id is stored as text (FileId::ToString, "3,01637037d6").
std::string EncodeChunk(const Chunk& c);
/// Errors: kCorruption (too short, or the file id does not parse).
StatusOr<Chunk> DecodeChunk(std::string_view v);

}  // namespace needlefs::meta_keys
