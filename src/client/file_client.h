// The file-level client every front end shares (FUSE, NFS, S3): file data
// as chunks in blobs, the chunk list in meta. Writes are buffered per open
// inode and cut into chunks (default 4 MiB); full chunks upload in parallel
// while the application keeps writing, and each uploaded chunk is committed
// to meta (AddChunks) in write order. Flush (close, fsync) uploads what is
// left and returns once every chunk is committed. Reads take the visible
// chunk list from meta, fetch whole chunk blobs through a bounded LRU cache
// (with sequential read-ahead of the next chunks) and overlay the data this
// client has not committed yet, so a process always reads what it (or
// another process of the same mount) wrote.
//
// Durability: a chunk is acknowledged by the volume server only when every
// replica has it (per the volume servers' durability mode; with
// unstable_uploads, once appended). Its commit to meta is visible to every
// client at once and survives kill -9 of meta, but is not synced to meta's
// disk (close(2) promises nothing about a machine crash). Fsync syncs the
// volumes this client wrote unstably and then meta, so an fsync that returns
// OK is on disk, and every write Flush acknowledged survives the kill of any
// one process.
//
// Errors: every method returns errno-carrying statuses for the caller to
// hand to the kernel or the NFS client: meta's own errnos unchanged, and EIO
// for a failed upload, an unreachable meta or a blob no replica can serve
// (never short or zero-filled data). A failed background upload is reported
// by the next Flush of that inode (as close(2)/fsync(2) report EIO).
//
// Thread-safe: all methods may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "client/blob_client.h"
#include "client/meta_client.h"
#include "common/status.h"
#include "common/types.h"

namespace needlefs {

struct FileClientOptions {
  /// Largest blob one chunk of a file takes, bytes. Default: 4 MiB.
  uint64_t chunk_size = 4ull << 20;
  /// Bytes of chunk data kept in the read cache (LRU). Default: 256 MiB.
  uint64_t cache_bytes = 256ull << 20;
  /// A directory for a second read cache on local disk (client/disk_cache.h),
  /// kept across mounts; "" (default) for none.
  std::string disk_cache_dir;
  /// Size cap of the disk cache, bytes. Default: 1 GiB.
  uint64_t disk_cache_bytes = 1ull << 30;
  /// Most bytes buffered for writing (not yet committed) across all files;
  /// a writer over the cap waits for uploads to finish. Default: 256 MiB.
  uint64_t max_write_buffer_bytes = 256ull << 20;
  /// Chunks uploaded at once. Default: 8.
  int upload_threads = 8;
  /// Chunks fetched ahead of a sequential reader. Default: 2.
  int readahead_chunks = 2;
  /// Upload chunks unstably (UploadRequest::unstable): acknowledged once
  /// the volume server appended them, made durable by the volume syncs of
  /// the next Fsync. Flush then promises what close(2) does on a local disk
  /// (survives the kill of any one process, not a machine crash). Default:
  /// false (every upload waits for the volume server's durability mode).
  bool unstable_uploads = false;
  /// What uploads ask the master for ("" = its default).
  std::string replication;
  std::string collection;
  /// The largest piece a close commits to meta with its bytes (an inline
  /// chunk: one round trip, no blob), bytes; the smaller of this and what
  /// meta takes (MetaClient::MaxInlineBytes) counts. 0: always a blob.
  uint64_t max_inline_bytes = UINT64_MAX;
  /// Called on the committing thread around each commit of chunks to meta
  /// (AddChunks) of an inode: before it (returning a token), and after it
  /// with that token and the inode's attributes as committed (null: not
  /// committed). The file-system layer marks the commit as its own, so the
  /// change stream's echo of it drops no cache, and keeps the attributes.
  /// Either may be empty.
  std::function<uint64_t(InodeId)> before_commit;
  /// Called (under the inode's lock) before each commit of an inode's
  /// chunks, with whether the commit holds everything written to it so
  /// far: attribute changes to send with them in the same meta transaction
  /// (AddChunks' attributes), with their caller, or nothing. When meta
  /// refuses them (an errno), the chunks are committed without them and the
  /// refusal reaches the next Flush.
  std::function<std::optional<std::pair<RequestContext, SetAttrRequest>>(InodeId, bool last)>
      commit_attrs;
  std::function<void(InodeId, uint64_t token, const InodeAttr* committed)> after_commit;
};

class FileClient {
 public:
  /// `meta` and `blobs` are not owned and must outlive the client.
  FileClient(MetaClient* meta, BlobClient* blobs, FileClientOptions options = {});
  /// Waits for running uploads (it does not commit buffered data: Flush
  /// every open file before).
  ~FileClient();
  FileClient(const FileClient&) = delete;
  FileClient& operator=(const FileClient&) = delete;

  /// Opens `attr.ino` (a regular file) for I/O: the first Open of an inode
  /// sets up its buffers with meta's `attr.size`; later ones share them (and
  /// refresh the size when nothing is buffered). `chunks`, when given, is
  /// the file's whole visible chunk list fetched with `attr` (GetAttrWithChunks):
  /// reads then need no ReadChunks call. Nothing is fetched before the
  /// first read (an open is often no read: rsync reopens every file it
  /// wrote to chmod it). Pair every Open with a Release.
  void Open(const InodeAttr& attr, std::optional<std::vector<Chunk>> chunks = std::nullopt);
  /// Drops one Open of `ino`; the last one frees its buffers. Call Flush
  /// before when the data must be committed (Release does not upload).
  void Release(InodeId ino);

  /// Writes `data` at byte `offset` of open inode `ino` (buffered; may wait
  /// while all files' buffers are over max_write_buffer_bytes). Errors:
  /// EBADF (not open), EFBIG (past 2^62).
  Status Write(InodeId ino, uint64_t offset, std::string_view data);
  /// Up to `length` bytes at `offset`: shorter only at end of file; holes
  /// read as zeros. Works on inodes that are not open (one meta call for the
  /// chunk list). Errors: ENOENT, EIO.
  StatusOr<std::string> Read(InodeId ino, uint64_t offset, uint64_t length);
  /// Uploads everything buffered for `ino` and commits it to meta; returns
  /// when all of it is committed. OK at once when nothing is buffered or the
  /// inode is not open. Errors: EIO (an upload or the commit failed; the
  /// data of this write-back is lost, as with a local disk's write error),
  /// meta's errno (ENOENT for a file removed meanwhile).
  Status Flush(InodeId ino);
  /// Flush, then makes the volumes this client wrote unstably and meta
  /// durable: fsync(2), NFS COMMIT. Errors: as Flush; EIO when a volume
  /// server or meta cannot sync (the other files' volumes count too: which
  /// volume a closed descriptor wrote to is not kept per file).
  Status Fsync(InodeId ino);

  /// The size including buffered writes, when `ino` is open and has data
  /// not yet committed (so getattr reports it); nullopt otherwise.
  std::optional<uint64_t> PendingSize(InodeId ino);
  /// Records a size change made through meta (truncate): the open inode's
  /// size becomes `size`, buffered data past it is dropped, cached chunk
  /// lists are forgotten. REQUIRES: Flush(ino) before the SetAttr.
  void Truncated(InodeId ino, uint64_t size);
  /// Forgets what is cached about `ino` (its chunk list and, when nothing is
  /// buffered, its size): another client changed it (meta's change stream).
  void Invalidate(InodeId ino);
  /// Forgets every cached chunk list and size (change stream reset).
  void InvalidateAll();

  /// Bytes in the read cache now (for metrics and memory tests).
  uint64_t cached_bytes() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

/// The errno a front end reports for `s`: its POSIX errno, EIO for any
/// other failure, 0 for OK.
int ErrnoOf(const Status& s);

}  // namespace needlefs
