// Client of the meta server's gRPC service (proto/meta.proto) in plain C++
// types: the same methods and signatures as Namespace (metadata/namespace.h),
// so the front ends (FUSE, NFS, S3) run against a remote namespace exactly as
// against a local one, plus Subscribe to the change stream for their caches.
// The gRPC glue stays in meta_client.cc.
//
// Errors: a namespace error comes back as Status::Posix(errno, message),
// the exact errno the server's Namespace returned (see namespace.h for which
// method returns which). Transport failures keep their gRPC code:
// kUnavailable (meta unreachable or stopping: retry), kDeadlineExceeded (no
// reply within timeout_ms; the operation may or may not have happened),
// kResourceExhausted (the server's threads are all busy); a server error
// without an errno keeps its code (kAborted, kCorruption, kInternal, ...).
// These have posix_errno() == 0.
//
// Thread-safe: one client may be used from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/types.h"
#include "metadata/namespace_types.h"

namespace needlefs {

/// How a MetaClient sends its calls.
struct MetaClientOptions {
  /// Deadline of each unary call (ms); Subscribe has none.
  int timeout_ms = 10'000;
  /// Namespace calls (Lookup, GetAttr and its variants, SetAttr, Create,
  /// Mkdir, Mknod, Symlink, Link, Unlink, Rmdir, Rename) kept in flight at
  /// once. A call beyond that waits, and the waiting calls of all threads go
  /// out together as one Batch call (up to 64) when one in flight returns:
  /// under load, many operations share one round trip and one WAL sync on
  /// the server; with fewer concurrent callers nothing waits. The first
  /// call in line waits at most 5 ms for a slot, then its batch goes out
  /// anyway (so this is a soft limit: calls stuck in flight hold up the
  /// others for 5 ms, not until they end). Each call still gets its own
  /// result and errno; see BatchRequest in meta.proto for what a batch
  /// changes about durability. Against a meta without Batch (an older
  /// version), the client sends every call alone. 0: never batch. The default 2
  /// measured best here (c=16 on 2 cores: creates 13k/s at 2, 8.5k/s at 4
  /// or 8, 9k/s with 16 unbatched clients; bench/RESULTS.md).
  int max_in_flight = 2;
  /// Send unary calls over meta's frame RPC port (common/frame_rpc.h) when
  /// meta has one (asked with ServerInfo): the same messages with fewer
  /// thread hand-offs (a setattr from the FUSE mount measured 224 us over
  /// gRPC, see docs/benchmarks.md). Subscribe stays on gRPC. Default: true.
  bool frame_rpc = true;
};

class MetaClient {
 public:
  /// A client for "host:port" (the meta server's gRPC port). Connects
  /// lazily. Errors: kInvalidArgument for a malformed address.
  static StatusOr<std::unique_ptr<MetaClient>> Create(const std::string& hostport,
                                                      const MetaClientOptions& options);
  /// Create with the default options and this call deadline (ms).
  static StatusOr<std::unique_ptr<MetaClient>> Create(const std::string& hostport,
                                                      int timeout_ms = 10'000);
  virtual ~MetaClient() = default;

  // The Namespace's methods: see metadata/namespace.h for each contract.

  virtual StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent,
                                     const std::string& name) = 0;
  virtual StatusOr<InodeAttr> GetAttr(InodeId ino) = 0;
  /// GetAttr, plus the whole visible chunk list in `*chunks` (as ReadChunks
  /// returns it) when `ino` is a regular file of at most `max_chunks`
  /// chunks; otherwise `*chunks` is left empty (nullopt). One round trip.
  virtual StatusOr<InodeAttr> GetAttrWithChunks(InodeId ino, uint32_t max_chunks,
                                                std::optional<std::vector<Chunk>>* chunks) = 0;
  /// REQUIRES: generation.value != 0 (0 means "no check" on the wire).
  virtual StatusOr<InodeAttr> GetAttrChecked(InodeId ino, Generation generation) = 0;
  /// `info` (here and below; may be null): asks meta for the attributes
  /// around the change (ChangeInfo), set also when the call failed with an
  /// errno (then with what was read before the failure).
  virtual StatusOr<InodeAttr> SetAttr(const RequestContext& ctx, InodeId ino,
                                      const SetAttrRequest& req, ChangeInfo* info = nullptr) = 0;
  /// *created (when not null) is set only on success.
  virtual StatusOr<InodeAttr> Create(const RequestContext& ctx, InodeId parent,
                                     const std::string& name, uint32_t mode, bool exclusive,
                                     bool* created = nullptr, ChangeInfo* info = nullptr,
                                     std::optional<uint64_t> verifier = std::nullopt) = 0;
  virtual StatusOr<InodeAttr> Mkdir(const RequestContext& ctx, InodeId parent,
                                    const std::string& name, uint32_t mode,
                                    ChangeInfo* info = nullptr) = 0;
  virtual StatusOr<InodeAttr> Mknod(const RequestContext& ctx, InodeId parent,
                                    const std::string& name, FileType type, uint32_t mode,
                                    uint64_t rdev, ChangeInfo* info = nullptr) = 0;
  virtual StatusOr<InodeAttr> Symlink(const RequestContext& ctx, InodeId parent,
                                      const std::string& name, const std::string& target,
                                      ChangeInfo* info = nullptr) = 0;
  virtual StatusOr<std::string> Readlink(InodeId ino) = 0;
  virtual StatusOr<InodeAttr> Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                                   const std::string& new_name, ChangeInfo* info = nullptr) = 0;
  virtual Status Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                        ChangeInfo* info = nullptr) = 0;
  virtual Status Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                       ChangeInfo* info = nullptr) = 0;
  virtual Status Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                        InodeId new_parent, const std::string& new_name, uint32_t flags = 0,
                        ChangeInfo* info = nullptr) = 0;
  /// The server returns at most 65536 entries per call (then eof is false).
  virtual StatusOr<ReadDirResult> ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                          size_t max_entries, bool plus) = 0;
  virtual Status Access(const RequestContext& ctx, InodeId ino, int mask) = 0;
  virtual StatusOr<StatFs> GetStatFs() = 0;
  virtual Status SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                          const std::string& value, int flags) = 0;
  virtual StatusOr<std::string> GetXattr(const RequestContext& ctx, InodeId ino,
                                         const std::string& name) = 0;
  virtual StatusOr<std::vector<std::string>> ListXattr(const RequestContext& ctx, InodeId ino) = 0;
  virtual Status RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name) = 0;
  virtual StatusOr<InodeAttr> Compose(const RequestContext& ctx, InodeId target, InodeId parts_dir,
                                      const std::vector<std::string>& parts,
                                      ChangeInfo* info = nullptr) = 0;
  /// `sync` as RequestContext::sync (false: not yet durable, see Sync).
  /// `attrs` (may be null; with `attrs_ctx`, its caller): attribute
  /// changes applied after the chunks in the same transaction
  /// (Namespace::AddChunks).
  virtual StatusOr<InodeAttr> AddChunks(InodeId ino, const std::vector<Chunk>& chunks,
                                        uint64_t min_size, bool sync,
                                        const SetAttrRequest* attrs = nullptr,
                                        const RequestContext* attrs_ctx = nullptr) = 0;
  /// The largest inline chunk (Chunk::data) meta takes in AddChunks, bytes:
  /// what it announced (ServerInfo), 0 until known or when it takes none.
  virtual uint64_t MaxInlineBytes() { return 0; }
  /// Whether meta applies attributes sent with AddChunks (it announced so
  /// in ServerInfo; an older meta would drop them).
  virtual bool TakesCommitAttributes() { return false; }
  /// Asks meta for what ServerInfo says again at the next use (a limit
  /// turned out lower than announced).
  virtual void RefreshServerInfo() {}
  /// Makes every change meta committed so far durable (Namespace::Sync).
  virtual Status Sync() = 0;
  /// A chunk in meta's reply whose file id does not parse is EIO (here and
  /// in GetAttrWithChunks).
  virtual StatusOr<std::vector<Chunk>> ReadChunks(InodeId ino, uint64_t offset,
                                                  uint64_t length) = 0;
  /// Sessions: an unknown or expired session is kNotFound (no errno).
  virtual StatusOr<uint64_t> OpenSession(const std::string& client, int64_t lease_ms) = 0;
  virtual Status RenewSession(uint64_t session, int64_t lease_ms) = 0;
  virtual Status CloseSession(uint64_t session) = 0;
  virtual Status OpenFile(uint64_t session, InodeId ino) = 0;
  virtual Status ReleaseFile(uint64_t session, InodeId ino) = 0;
  virtual StatusOr<size_t> ExpireSessions(int64_t now_ns) = 0;
  /// The server returns at most 65536 entries per call.
  virtual StatusOr<std::vector<std::pair<uint64_t, std::string>>> PeekGarbage(size_t max) = 0;
  virtual Status AckGarbage(uint64_t seq) = 0;

  /// Follows the meta server's change stream (metadata/change_log.h),
  /// calling on_event(seq, event, reset) from this thread for each committed
  /// change after `from_seq`, until on_event returns false or the stream
  /// ends. Blocks meanwhile.
  ///
  /// `from_seq` is the seq of the last event the caller applied (0 for a new
  /// subscriber). With reset = true, events were missed (new subscriber, meta
  /// restarted, or fell more than the server's ring behind): drop every
  /// cache; `event` is then empty and `seq` is where the stream resumes. The
  /// client remembers the server's epoch, so resubscribing through the same
  /// client with the last seq seen detects a meta restart; through another
  /// client, the first message is always a reset.
  ///
  /// Returns OK when on_event returned false; otherwise why the stream
  /// ended: kUnavailable (meta stopped or unreachable: resubscribe with the
  /// last seq), kCancelled (CancelSubscribe).
  virtual Status Subscribe(
      uint64_t from_seq,
      const std::function<bool(uint64_t seq, const ChangeEvent& event, bool reset)>& on_event) = 0;
  /// Makes the Subscribe calls running now return kCancelled soon, and
  /// every later one at once (for shutdown: a stream with no events
  /// otherwise blocks indefinitely, and a Subscribe that starts just after
  /// the cancel must not be missed).
  virtual void CancelSubscribe() = 0;
};

}  // namespace needlefs
