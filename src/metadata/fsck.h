// fsck of the namespace: checks the KV contents against the invariants the
// namespace keeps, and with `repair` fixes what it safely can.
//
// Checked (an unlinked file a session still holds open is fine): every entry (D) points to a live
// inode of the recorded type and has its cookie record (C) and the reverse; every inode but the
// root is reachable; nlink = names (files) or 2 + subdirectories (directories); directory parent
// pointers match the entry that names them; chunks (K) and xattrs (X) belong to live inodes; every
// chunk record decodes (its file id parses); no blob backs chunks of two inodes; every
// garbage-queue entry (G) is a file id, and none names a blob a chunk still uses.
//
// Repairs: dangling entries and cookie records are removed, missing cookie
// records of live entries are written back; nlink and parent
// pointers are set to what the tree says; chunks/xattrs of missing inodes are
// removed (chunk blobs queued as garbage); garbage entries whose blob is
// still used are dropped (deleting them would lose data), and so are those
// that are not file ids (they name no blob); unreachable inodes
// are linked into /lost+found as "#<ino>".
//
// Memory: one entry per inode and per blob id (a check of a namespace with
// 10^8 files wants a few GiB; a streaming version is future work).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "metadata/kv_store.h"

namespace needlefs {

struct FsckReport {
  uint64_t inodes = 0;
  uint64_t entries = 0;
  uint64_t chunks = 0;
  uint64_t garbage_entries = 0;
  std::vector<std::string> problems;  ///< one human-readable line each
  uint64_t repaired = 0;
  bool clean() const { return problems.empty(); }
};

/// Checks (and with `repair`, fixes) the namespace in `store`. Run it on a
/// quiet namespace (no concurrent operations) for exact results.
/// `progress(done, total_inodes)` is called now and then.
StatusOr<FsckReport> Fsck(KvStore& store, bool repair,
                          const std::function<void(uint64_t, uint64_t)>& progress = nullptr);

}  // namespace needlefs
