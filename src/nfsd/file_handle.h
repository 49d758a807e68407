// NFSv3 file handles (nfs_fh3, RFC 1813 section 2.3.3): export id, inode
// number and generation, signed with a key the whole cluster shares, 28
// bytes, with no server-side table: a handle stays valid across restarts
// of nfsd and across every nfsd over the same cluster (a client may fail
// over from one to another), and a handle a client makes up (another
// inode, another export id) does not verify, so it cannot reach past the
// exports the client was given.
//
// Layout (big-endian): byte 0 version (2), byte 1 export id, bytes 2-3
// zero, bytes 4-11 inode number, bytes 12-19 generation, bytes 20-27 the
// first 8 bytes of HMAC-SHA256(key, bytes 0-19).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/types.h"

namespace needlefs::nfsd {

inline constexpr size_t kFileHandleBytes = 28;
/// Bytes of the signing key.
inline constexpr size_t kFileHandleKeyBytes = 32;

struct FileHandle {
  uint8_t export_id = 0;
  InodeId ino;
  Generation generation;
};

/// Makes and checks handles with one key (kFileHandleKeyBytes bytes; every
/// nfsd of a cluster must use the same: Nfs3 keeps it on the root inode).
class FileHandleCodec {
 public:
  explicit FileHandleCodec(std::string key) : key_(std::move(key)) {}
  /// The kFileHandleBytes bytes a client holds.
  std::string Encode(const FileHandle& h) const;
  /// nullopt for anything this cluster did not make (wrong length, version
  /// or signature, inode 0): NFS3ERR_BADHANDLE.
  std::optional<FileHandle> Decode(std::string_view bytes) const;

 private:
  std::string key_;
};

}  // namespace needlefs::nfsd
