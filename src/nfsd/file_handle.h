// NFSv3 file handles (nfs_fh3, RFC 1813 section 2.3.3): export id, inode
// number and generation, 20 bytes, with no server-side state, so a handle
// stays valid across restarts of nfsd and across every nfsd over the same
// cluster (a client may fail over from one to another).
//
// Layout (big-endian): byte 0 version (1), byte 1 export id, bytes 2-3
// zero, bytes 4-11 inode number, bytes 12-19 generation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/types.h"

namespace needlefs::nfsd {

inline constexpr size_t kFileHandleBytes = 20;

struct FileHandle {
  uint8_t export_id = 0;
  InodeId ino;
  Generation generation;

  /// The 20 bytes a client holds.
  std::string Encode() const;
  /// nullopt for anything that is not a handle this server made (wrong
  /// length or version, inode 0): NFS3ERR_BADHANDLE.
  static std::optional<FileHandle> Decode(std::string_view bytes);
};

}  // namespace needlefs::nfsd
