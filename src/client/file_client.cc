#include "client/file_client.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/disk_cache.h"
#include "common/logging.h"
#include "common/task_pool.h"

namespace needlefs {
namespace {

constexpr uint64_t kMaxFileSize = 1ull << 62;

using BlobData = std::shared_ptr<const std::string>;

/// Whole chunk blobs by file id (keyed by its string form, as the disk
/// tier names its files), least recently used evicted first; two readers of
/// one blob share one fetch. Blob contents never change under a file id, so
/// entries never go stale.
class BlobCache {
 public:
  /// `disk` (may be null) is the second tier, consulted before the volume
  /// servers and filled from them.
  BlobCache(BlobClient* blobs, uint64_t cap_bytes, std::unique_ptr<DiskCache> disk)
      : blobs_(blobs), cap_(cap_bytes), disk_(std::move(disk)) {}

  StatusOr<BlobData> Get(const FileId& file_id) {
    const std::string fid = file_id.ToString();
    std::shared_ptr<Fetch> fetch;
    bool owner = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (auto it = index_.find(fid); it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->second;
      }
      auto [it, inserted] = fetching_.try_emplace(fid);
      if (inserted) it->second = std::make_shared<Fetch>();
      fetch = it->second;
      owner = inserted;
    }
    if (!owner) {
      std::unique_lock<std::mutex> l(fetch->mu);
      fetch->cv.wait(l, [&] { return fetch->done; });
      if (!fetch->status.ok()) return fetch->status;
      return fetch->data;
    }
    std::optional<std::string> local = disk_ ? disk_->Get(fid) : std::nullopt;
    StatusOr<std::string> r =
        local ? StatusOr<std::string>(std::move(*local)) : blobs_->Read(file_id);
    if (!local && disk_ && r.ok()) disk_->Put(fid, *r);
    BlobData data;
    Status status;
    if (r.ok()) {
      data = std::make_shared<const std::string>(std::move(r).value());
    } else {
      status = r.status();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      fetching_.erase(fid);
      if (data && data->size() <= cap_ / 4) Insert(fid, data);
    }
    {
      std::lock_guard<std::mutex> g(fetch->mu);
      fetch->done = true;
      fetch->status = status;
      fetch->data = data;
    }
    fetch->cv.notify_all();
    if (!status.ok()) return status;
    return data;
  }

  /// In memory, being fetched, or on the local disk.
  bool Contains(const FileId& file_id) {
    const std::string fid = file_id.ToString();
    {
      std::lock_guard<std::mutex> g(mu_);
      if (index_.count(fid) > 0 || fetching_.count(fid) > 0) return true;
    }
    return disk_ && disk_->Contains(fid);
  }

  uint64_t bytes() const {
    std::lock_guard<std::mutex> g(mu_);
    return bytes_;
  }

 private:
  struct Fetch {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status status;
    BlobData data;
  };
  using Lru = std::list<std::pair<std::string, BlobData>>;

  void Insert(const std::string& fid, BlobData data) {  // REQUIRES: mu_ held
    if (index_.count(fid)) return;
    bytes_ += data->size();
    lru_.emplace_front(fid, std::move(data));
    index_[fid] = lru_.begin();
    while (bytes_ > cap_ && !lru_.empty()) {
      bytes_ -= lru_.back().second->size();
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  BlobClient* const blobs_;
  const uint64_t cap_;
  const std::unique_ptr<DiskCache> disk_;  // null: no disk tier
  mutable std::mutex mu_;
  Lru lru_;                                                           // GUARDED_BY(mu_)
  std::unordered_map<std::string, Lru::iterator> index_;              // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::shared_ptr<Fetch>> fetching_;  // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;                                                // GUARDED_BY(mu_)
};

/// A chunk on its way to a volume server, then to meta.
struct PendingChunk {
  uint64_t seq = 0;
  uint64_t offset = 0;
  std::shared_ptr<const std::string> data;
  enum class State { kUploading, kUploaded, kFailed } state = State::kUploading;
  FileId fid;                ///< kUploaded: the blob
  bool inline_data = false;  ///< kUploaded without a blob: committed with its bytes
};

/// Chunks larger than this are read by ranges when the access is random.
constexpr uint64_t kRangeReadAbove = 256 << 10;
/// A read that starts within this many bytes of where the last read of the
/// file ended counts as sequential (the kernel's largest readahead).
constexpr uint64_t kSequentialWindow = 4 << 20;

/// The shared state of one open inode.
struct OpenInode {
  explicit OpenInode(InodeId i) : ino(i) {}
  const InodeId ino;
  std::mutex mu;
  std::condition_variable committed_cv;      // signalled when pending shrinks
  int refs = 0;                              // GUARDED_BY(mu)
  uint64_t size = 0;                         // GUARDED_BY(mu): including buffered writes
  bool size_stale = false;                   // GUARDED_BY(mu): ask meta before the next read
  std::map<uint64_t, std::string> dirty;     // GUARDED_BY(mu): offset -> bytes, disjoint
  uint64_t dirty_bytes = 0;                  // GUARDED_BY(mu)
  std::deque<PendingChunk> pending;          // GUARDED_BY(mu): in seq order
  uint64_t next_seq = 1;                     // GUARDED_BY(mu)
  uint64_t commit_gen = 0;                   // GUARDED_BY(mu): bumped when pending shrinks
  Status error;                              // GUARDED_BY(mu): first failed upload/commit
  std::optional<std::vector<Chunk>> chunks;  // GUARDED_BY(mu): meta's list, whole file
  uint64_t last_read_end = 0;                // GUARDED_BY(mu)
  std::mutex commit_mu;                      // serializes commits to meta, in seq order

  bool Buffered() const { return !dirty.empty() || !pending.empty(); }
};

Status Eio(const Status& s, const std::string& what) {
  if (s.posix_errno() != 0) return s;
  return Status::Posix(EIO, what + ": " + s.ToString());
}

/// A failed blob transfer (upload, read, volume sync) as the caller's
/// errno: EIO, whatever errno the transport carried (ECONNREFUSED from a
/// dead volume server is not a file error), but ENOSPC and EDQUOT.
Status BlobEio(const Status& s, const std::string& what) {
  if (s.posix_errno() == ENOSPC || s.posix_errno() == EDQUOT) return s;
  return Status::Posix(EIO, what + ": " + s.ToString());
}

/// The disk tier of the read cache, when the options ask for one; a cache
/// that cannot be opened is logged and left out (reads still work).
std::unique_ptr<DiskCache> OpenDiskCache(const FileClientOptions& o) {
  if (o.disk_cache_dir.empty()) return nullptr;
  auto c = DiskCache::Open(o.disk_cache_dir, o.disk_cache_bytes);
  if (!c.ok()) {
    spdlog::error("client.disk_cache dir={}: {}; reading without it", o.disk_cache_dir,
                  c.status().ToString());
    return nullptr;
  }
  return std::move(c).value();
}

}  // namespace

class FileClient::Impl {
 public:
  Impl(MetaClient* meta, BlobClient* blobs, FileClientOptions o)
      : meta_(meta),
        blobs_(blobs),
        options_(std::move(o)),
        cache_(blobs, options_.cache_bytes, OpenDiskCache(options_)),
        uploads_(options_.upload_threads),
        readahead_(2) {
    options_.chunk_size = std::max<uint64_t>(options_.chunk_size, 4096);
  }

  /// Every open inode's state, as of now.
  std::vector<std::shared_ptr<OpenInode>> OpenInodes() {
    std::lock_guard<std::mutex> g(map_mu_);
    std::vector<std::shared_ptr<OpenInode>> all;
    for (auto& [ino, s] : open_) all.push_back(s);
    return all;
  }

  std::shared_ptr<OpenInode> Find(InodeId ino) {
    std::lock_guard<std::mutex> g(map_mu_);
    auto it = open_.find(ino.value);
    return it == open_.end() ? nullptr : it->second;
  }

  void Open(const InodeAttr& attr, std::optional<std::vector<Chunk>> chunks) {
    std::shared_ptr<OpenInode> s;
    {
      std::lock_guard<std::mutex> g(map_mu_);
      auto& slot = open_[attr.ino.value];
      if (!slot) slot = std::make_shared<OpenInode>(attr.ino);
      s = slot;
      std::lock_guard<std::mutex> g2(s->mu);
      ++s->refs;
    }
    std::lock_guard<std::mutex> g(s->mu);
    if (!s->Buffered()) {
      s->size = attr.size;
      s->size_stale = false;
      // Close-to-open: see what others committed (the list fetched with
      // `attr`, or a fresh one at the first read).
      s->chunks = std::move(chunks);
    }
  }

  void Release(InodeId ino) {
    // `keep` is declared before the locks, so it is destroyed after them:
    // erasing the map's reference may drop the last one, and the OpenInode
    // (with the mutex g2 holds) must outlive g2's unlock. Unlocking a freed
    // mutex wrote zeros into whatever reused the memory (a gRPC completion
    // queue, in the crashes of 2026-12-01).
    std::shared_ptr<OpenInode> keep;
    std::lock_guard<std::mutex> g(map_mu_);
    auto it = open_.find(ino.value);
    if (it == open_.end()) return;
    keep = it->second;
    std::lock_guard<std::mutex> g2(keep->mu);
    if (--keep->refs <= 0) open_.erase(it);  // uploads hold their own reference
  }

  Status Write(InodeId ino, uint64_t offset, std::string_view data) {
    auto s = Find(ino);
    if (!s) return Status::Posix(EBADF, "write: inode " + std::to_string(ino.value) + " not open");
    if (offset > kMaxFileSize || data.size() > kMaxFileSize - offset) {
      return Status::Posix(EFBIG, "write past the largest file size");
    }
    if (data.empty()) return Status::OK();
    WaitForBufferSpace();
    std::unique_lock<std::mutex> l(s->mu);
    const uint64_t end = offset + data.size();
    int64_t delta = 0;
    uint64_t ext_start = Merge(*s, offset, data, &delta);
    AddBuffered(delta);
    s->size = std::max(s->size, end);
    // Upload every piece that reaches a chunk boundary: sequential writers
    // will not come back to it.
    auto it = s->dirty.find(ext_start);
    while (it != s->dirty.end()) {
      const uint64_t start = it->first, stop = start + it->second.size();
      const uint64_t boundary = (start / options_.chunk_size + 1) * options_.chunk_size;
      if (boundary > stop) break;
      std::string piece, rest;
      if (boundary == stop) {
        piece = std::move(it->second);  // the extent ends at the boundary: no copy
      } else {
        piece = it->second.substr(0, boundary - start);
        rest = it->second.substr(boundary - start);
      }
      s->dirty.erase(it);
      s->dirty_bytes -= piece.size() + rest.size();
      if (!rest.empty()) {
        s->dirty_bytes += rest.size();
        it = s->dirty.emplace(boundary, std::move(rest)).first;
      } else {
        it = s->dirty.end();
      }
      SubmitLocked(s, start, std::move(piece));
    }
    // Scattered small writes that never fill a chunk: bound them per file.
    if (s->dirty_bytes > 2 * options_.chunk_size) SubmitAllLocked(s);
    return Status::OK();
  }

  /// Flush, then the volumes this client wrote unstably, then meta's Sync
  /// (the commits above were unsynced).
  Status Fsync(InodeId ino) {
    NEEDLEFS_RETURN_IF_ERROR(Flush(ino));
    std::map<uint32_t, uint64_t> volumes;
    {
      std::lock_guard<std::mutex> g(unstable_mu_);
      volumes = unstable_;
    }
    for (const auto& [volume, stamp] : volumes) {
      Status st = blobs_->Sync(VolumeId(volume));
      if (st.IsNotFound()) {
        // Deleted with everything on it (nothing left to make durable);
        // kept, it would fail every later fsync of this mount.
        spdlog::warn("client.fsync volume={}: {}", volume, st.ToString());
      } else if (!st.ok()) {
        return BlobEio(st, "volume sync");
      }
      // Forgotten only when no unstable write landed there meanwhile (that
      // one may have missed this sync).
      std::lock_guard<std::mutex> g(unstable_mu_);
      auto it = unstable_.find(volume);
      if (it != unstable_.end() && it->second == stamp) unstable_.erase(it);
    }
    Status st = meta_->Sync();
    return st.ok() ? st : Eio(st, "meta sync");
  }

  /// Remembers that blob `fid` was uploaded unstably (its volume needs a
  /// sync before the next Fsync returns).
  void NoteUnstable(const FileId& fid) {
    std::lock_guard<std::mutex> g(unstable_mu_);
    unstable_[fid.volume.value] = ++unstable_stamp_;
  }

  Status Flush(InodeId ino) {
    auto s = Find(ino);
    if (!s) return Status::OK();
    std::unique_lock<std::mutex> l(s->mu);
    if (s->pending.empty() && s->dirty.size() == 1) {
      const auto& [at, bytes] = *s->dirty.begin();
      if (at / options_.chunk_size == (at + bytes.size() - 1) / options_.chunk_size) {
        // The usual close of a small file: one piece and nothing in flight.
        // Uploaded and committed on this thread; through the upload pool it
        // cost two more context switches (a wake-up there and back).
        auto node = s->dirty.extract(s->dirty.begin());
        s->dirty_bytes -= node.mapped().size();
        const bool in_meta = node.mapped().size() <= InlineLimit();
        auto [seq, blob] = AddPendingLocked(s, node.key(), std::move(node.mapped()));
        if (in_meta) {
          // Small enough to go to meta with its commit: no blob, one round
          // trip (NamespaceOptions::max_inline_bytes).
          s->pending.back().state = PendingChunk::State::kUploaded;
          s->pending.back().inline_data = true;
          l.unlock();
          CommitReady(s);
        } else {
          l.unlock();
          UploadOne(s, seq, blob);
        }
        l.lock();
      }
    }
    SubmitAllLocked(s);
    const uint64_t target = s->next_seq - 1;
    s->committed_cv.wait(l, [&] { return s->pending.empty() || s->pending.front().seq > target; });
    Status err = s->error;
    s->error = Status::OK();
    return err;
  }

  std::optional<uint64_t> PendingSize(InodeId ino) {
    auto s = Find(ino);
    if (!s) return std::nullopt;
    std::lock_guard<std::mutex> g(s->mu);
    if (!s->Buffered()) return std::nullopt;
    return s->size;
  }

  void Truncated(InodeId ino, uint64_t size) {
    auto s = Find(ino);
    if (!s) return;
    std::lock_guard<std::mutex> g(s->mu);
    s->size = size;
    s->size_stale = false;
    s->chunks.reset();
    ++s->commit_gen;
    int64_t delta = 0;
    for (auto it = s->dirty.begin(); it != s->dirty.end();) {
      if (it->first >= size) {
        delta -= static_cast<int64_t>(it->second.size());
        it = s->dirty.erase(it);
        continue;
      }
      if (it->first + it->second.size() > size) {
        const uint64_t keep = size - it->first;
        delta -= static_cast<int64_t>(it->second.size() - keep);
        it->second.resize(keep);
      }
      ++it;
    }
    s->dirty_bytes = static_cast<uint64_t>(static_cast<int64_t>(s->dirty_bytes) + delta);
    AddBuffered(delta);
  }

  void Invalidate(InodeId ino) {
    auto s = Find(ino);
    if (!s) return;
    std::lock_guard<std::mutex> g(s->mu);
    s->chunks.reset();
    ++s->commit_gen;
    if (!s->Buffered()) s->size_stale = true;
  }

  void InvalidateAll() {
    for (auto& s : OpenInodes()) Invalidate(s->ino);
  }

  StatusOr<std::string> Read(InodeId ino, uint64_t offset, uint64_t length) {
    auto s = Find(ino);
    std::vector<Chunk> chunks;
    std::vector<std::pair<uint64_t, std::shared_ptr<const std::string>>> overlay;
    uint64_t size = 0;
    bool random = false;  // not where the last read of this open file ended
    for (int attempt = 0;; ++attempt) {
      overlay.clear();
      if (!s) {
        NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr attr, WithErrno(meta_->GetAttr(ino), "getattr"));
        size = attr.size;
        if (offset >= size || length == 0) return std::string();
        length = std::min(length, size - offset);
        NEEDLEFS_ASSIGN_OR_RETURN(chunks,
                                  WithErrno(meta_->ReadChunks(ino, offset, length), "chunks"));
        break;
      }
      std::unique_lock<std::mutex> l(s->mu);
      if (s->size_stale && !s->Buffered()) {
        l.unlock();
        NEEDLEFS_ASSIGN_OR_RETURN(InodeAttr attr, WithErrno(meta_->GetAttr(ino), "getattr"));
        l.lock();
        if (s->size_stale && !s->Buffered()) s->size = attr.size;
        s->size_stale = false;
      }
      size = s->size;
      if (offset >= size || length == 0) return std::string();
      length = std::min(length, size - offset);
      const uint64_t gen = s->commit_gen;
      if (!s->chunks) {
        l.unlock();
        NEEDLEFS_ASSIGN_OR_RETURN(auto list,
                                  WithErrno(meta_->ReadChunks(ino, 0, kMaxFileSize), "chunks"));
        l.lock();
        if (s->commit_gen != gen && attempt < 5) continue;  // a commit raced the fetch
        s->chunks = std::move(list);
      }
      chunks.clear();
      for (const Chunk& c : *s->chunks) {
        if (c.offset < offset + length && c.offset + c.size > offset) chunks.push_back(c);
      }
      // What this client wrote and meta does not have yet, oldest first.
      for (const PendingChunk& p : s->pending) {
        if (p.offset < offset + length && p.offset + p.data->size() > offset) {
          overlay.emplace_back(p.offset, p.data);
        }
      }
      auto it = s->dirty.upper_bound(offset);
      if (it != s->dirty.begin()) --it;
      for (; it != s->dirty.end() && it->first < offset + length; ++it) {
        if (it->first + it->second.size() <= offset) continue;
        const uint64_t from = std::max(offset, it->first);
        const uint64_t to = std::min(offset + length, it->first + it->second.size());
        overlay.emplace_back(from, std::make_shared<const std::string>(
                                       it->second.substr(from - it->first, to - from)));
      }
      // Near the last read is still sequential: the kernel's readahead
      // requests reach the FUSE workers out of order.
      if (offset == 0 || (offset <= s->last_read_end + kSequentialWindow &&
                          offset + kSequentialWindow >= s->last_read_end)) {
        Prefetch(s, offset + length);
      } else {
        random = true;
      }
      s->last_read_end = offset + length;
      break;
    }

    std::string out(length, '\0');
    for (const Chunk& c : chunks) {
      const uint64_t from = std::max(offset, c.offset);
      const uint64_t to = std::min(offset + length, c.offset + c.size);
      if (c.is_inline()) {  // the bytes came from meta with the chunk
        if (from >= to) continue;
        if (c.data.size() < to - c.offset) return Status::Posix(EIO, "inline chunk too short");
        std::memcpy(out.data() + (from - offset), c.data.data() + (from - c.offset), to - from);
        continue;
      }
      uint64_t at = c.blob_offset + (from - c.offset);  // in `bytes`
      std::string part;
      BlobData blob;
      std::string_view bytes;
      const bool ranged = random && c.size > kRangeReadAbove && !cache_.Contains(c.file_id);
      if (ranged) {
        // A random read of a big chunk fetches just its bytes (a whole
        // 4 MiB chunk per 4 KiB read made random reads 20x slower), and
        // leaves the cache to the chunks read through.
        auto r = blobs_->ReadRange(c.file_id, at, to - from);
        if (!r.ok()) return BlobEio(r.status(), "read blob " + c.file_id.ToString());
        part = std::move(r).value();
        bytes = part;
        at = 0;
      } else {
        auto r = cache_.Get(c.file_id);
        if (!r.ok()) return BlobEio(r.status(), "read blob " + c.file_id.ToString());
        blob = std::move(r).value();
        bytes = *blob;
      }
      // A range comes back exactly as asked; a whole blob must hold it.
      if (ranged ? bytes.size() != to - from : at + (to - from) > bytes.size()) {
        return Status::Posix(EIO, "blob " + c.file_id.ToString() + " is shorter than its chunk");
      }
      std::memcpy(out.data() + (from - offset), bytes.data() + at, to - from);
    }
    for (const auto& [at, data] : overlay) {
      const uint64_t from = std::max(offset, at);
      const uint64_t to = std::min(offset + length, at + data->size());
      if (from < to)
        std::memcpy(out.data() + (from - offset), data->data() + (from - at), to - from);
    }
    return out;
  }

  uint64_t cached_bytes() const { return cache_.bytes(); }

 private:
  template <typename T>
  static StatusOr<T> WithErrno(StatusOr<T> r, const std::string& what) {
    if (r.ok()) return r;
    return Eio(r.status(), what);
  }

  /// Merges [offset, offset+data) into s.dirty; returns the start of the
  /// extent that now holds it; *delta = change of buffered bytes.
  /// The capacity to give an extent at `start` that must hold `needed`
  /// bytes: up to the end of its chunk once it is big (a sequential writer
  /// then fills it without the copies of doubling), else just `needed`
  /// (small files keep small buffers).
  uint64_t ExtentRoom(uint64_t start, uint64_t needed) const {
    constexpr uint64_t kBig = 64 << 10;
    if (needed < kBig) return needed;
    return std::max(needed, options_.chunk_size - start % options_.chunk_size);
  }

  uint64_t Merge(OpenInode& s, uint64_t offset, std::string_view data, int64_t* delta) {
    const uint64_t end = offset + data.size();
    auto it = s.dirty.upper_bound(offset);
    // Fast path: appending to the extent just before, nothing after overlaps.
    if (it != s.dirty.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second.size() == offset && (it == s.dirty.end() || it->first > end)) {
        std::string& extent = prev->second;
        if (extent.capacity() < extent.size() + data.size()) {
          // Room up to the chunk's end at once: a sequential writer fills
          // it without the copies of doubling.
          const uint64_t needed = extent.size() + data.size();
          const uint64_t room = ExtentRoom(prev->first, needed);
          if (room > needed) extent.reserve(room);
        }
        extent.append(data);
        s.dirty_bytes += data.size();
        *delta = static_cast<int64_t>(data.size());
        return prev->first;
      }
      if (prev->first + prev->second.size() >= offset) it = prev;
    }
    uint64_t start = offset, stop = end;
    std::string merged;
    int64_t removed = 0;
    std::vector<std::map<uint64_t, std::string>::iterator> covered;
    for (; it != s.dirty.end() && it->first <= end; ++it) covered.push_back(it);
    if (!covered.empty()) {
      start = std::min(start, covered.front()->first);
      auto& last = covered.back();
      stop = std::max(stop, last->first + last->second.size());
    }
    if (covered.empty()) {
      // A new extent: room up to its chunk's end for the appends to come.
      merged.reserve(ExtentRoom(start, data.size()));
      merged.append(data);
      *delta = static_cast<int64_t>(data.size());
      s.dirty_bytes += data.size();
      s.dirty.emplace(start, std::move(merged));
      return start;
    }
    merged.resize(stop - start);
    for (auto& c : covered) {
      std::memcpy(merged.data() + (c->first - start), c->second.data(), c->second.size());
      removed += static_cast<int64_t>(c->second.size());
    }
    std::memcpy(merged.data() + (offset - start), data.data(), data.size());
    for (auto& c : covered) s.dirty.erase(c);
    *delta = static_cast<int64_t>(merged.size()) - removed;
    s.dirty_bytes = static_cast<uint64_t>(static_cast<int64_t>(s.dirty_bytes) + *delta);
    s.dirty.emplace(start, std::move(merged));
    return start;
  }

  /// Queues every dirty extent for upload, cut at chunk boundaries.
  void SubmitAllLocked(const std::shared_ptr<OpenInode>& s) {
    while (!s->dirty.empty()) {
      auto node = s->dirty.extract(s->dirty.begin());
      s->dirty_bytes -= node.mapped().size();
      uint64_t at = node.key();
      std::string_view rest = node.mapped();
      while (!rest.empty()) {
        const uint64_t boundary = (at / options_.chunk_size + 1) * options_.chunk_size;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(rest.size(), boundary - at));
        SubmitLocked(s, at, std::string(rest.substr(0, n)));
        at += n;
        rest.remove_prefix(n);
      }
    }
  }

  /// Starts uploading `data` (file bytes at `offset`). REQUIRES: s->mu held;
  /// the bytes were counted in buffered_ and dirty_bytes no longer has them.
  void SubmitLocked(const std::shared_ptr<OpenInode>& s, uint64_t offset, std::string data) {
    auto [seq, blob] = AddPendingLocked(s, offset, std::move(data));
    uploads_.Submit([this, s, seq = seq, blob = blob] { UploadOne(s, seq, blob); });
  }

  static bool HasInline(const std::vector<Chunk>& chunks) {
    for (const Chunk& c : chunks) {
      if (c.is_inline()) return true;
    }
    return false;
  }

  /// Stores `data` as a new blob with this client's placement and
  /// durability (an unstable upload is remembered for the next Fsync).
  StatusOr<FileId> UploadBlob(const std::string& data) {
    UploadRequest req;
    req.replication = options_.replication;
    req.collection = options_.collection;
    req.unstable = options_.unstable_uploads;
    auto fid = blobs_->Upload(data, req);
    if (fid.ok() && req.unstable) NoteUnstable(*fid);
    return fid;
  }

  /// Uploads the inline chunks of `chunks` as blobs (in place).
  Status InlineToBlobs(std::vector<Chunk>* chunks) {
    for (Chunk& c : *chunks) {
      if (!c.is_inline()) continue;
      auto fid = UploadBlob(c.data);
      if (!fid.ok()) return fid.status();
      c.file_id = *fid;
      c.data.clear();
    }
    return Status::OK();
  }

  /// The largest piece committed inline (with its bytes, to meta): the
  /// smaller of this client's limit and what meta takes.
  uint64_t InlineLimit() const {
    return std::min<uint64_t>(options_.max_inline_bytes, meta_->MaxInlineBytes());
  }

  /// Queues `data` (file bytes at `offset`) as the next pending chunk, to be
  /// uploaded by the caller: (its seq, its bytes). REQUIRES: s->mu held.
  std::pair<uint64_t, std::shared_ptr<const std::string>> AddPendingLocked(
      const std::shared_ptr<OpenInode>& s, uint64_t offset, std::string data) {
    PendingChunk p;
    p.seq = s->next_seq++;
    p.offset = offset;
    p.data = std::make_shared<const std::string>(std::move(data));
    auto blob = p.data;
    const uint64_t seq = p.seq;
    s->pending.push_back(std::move(p));
    return {seq, std::move(blob)};
  }

  void UploadOne(const std::shared_ptr<OpenInode>& s, uint64_t seq,
                 const std::shared_ptr<const std::string>& data) {
    auto fid = UploadBlob(*data);
    {
      std::lock_guard<std::mutex> g(s->mu);
      for (PendingChunk& p : s->pending) {
        if (p.seq != seq) continue;
        if (fid.ok()) {
          p.state = PendingChunk::State::kUploaded;
          p.fid = *fid;
        } else {
          p.state = PendingChunk::State::kFailed;
          spdlog::warn("client.upload ino={} offset={} bytes={}: {}", s->ino.value, p.offset,
                       data->size(), fid.status().ToString());
          if (s->error.ok()) s->error = BlobEio(fid.status(), "upload");
        }
        break;
      }
    }
    CommitReady(s);
  }

  /// Commits the uploaded chunks at the front of s->pending to meta, in
  /// write order.
  void CommitReady(const std::shared_ptr<OpenInode>& s) {
    std::lock_guard<std::mutex> commit(s->commit_mu);
    std::vector<Chunk> chunks;
    size_t n = 0;
    uint64_t bytes = 0, min_size = 0;
    bool last = false;  // this commit holds everything written so far
    std::optional<std::pair<RequestContext, SetAttrRequest>> attrs;
    {
      std::lock_guard<std::mutex> g(s->mu);
      for (const PendingChunk& p : s->pending) {
        if (p.state == PendingChunk::State::kUploading) break;
        ++n;
        bytes += p.data->size();
        if (p.state == PendingChunk::State::kUploaded) {
          chunks.push_back(Chunk{p.fid, p.offset, p.data->size(), 0, {}});
          if (p.inline_data) chunks.back().data = *p.data;
          min_size = std::max(min_size, p.offset + p.data->size());
        }
      }
      last = n == s->pending.size() && s->dirty.empty();
      // Attributes set after the data go with the commit of the last of it
      // (an earlier one would be followed by more chunks, and their mtime).
      // Taken under the lock, so no write slips in between.
      if (!chunks.empty() && options_.commit_attrs) attrs = options_.commit_attrs(s->ino, last);
    }
    if (n == 0) return;
    Status st;
    if (!chunks.empty()) {
      // Unsynced: Fsync makes it durable (close(2) does not promise that).
      const uint64_t token = options_.before_commit ? options_.before_commit(s->ino) : 0;
      auto r = meta_->AddChunks(s->ino, chunks, min_size, /*sync=*/false,
                                attrs ? &attrs->second : nullptr, attrs ? &attrs->first : nullptr);
      Status refused;  // meta's refusal of the attributes alone
      if (!r.ok() && attrs && r.status().posix_errno() != 0 && r.status().posix_errno() != EINVAL) {
        // The attributes were refused (someone changed the owner since):
        // the data still goes in, the refusal reaches the close.
        refused = r.status();
        r = meta_->AddChunks(s->ino, chunks, min_size, /*sync=*/false);
      }
      if (!r.ok() && r.status().posix_errno() == EINVAL && HasInline(chunks)) {
        // Meta takes less inline than it said (restarted with a lower
        // -maxInlineBytes): those bytes go to blobs, and the limit is asked
        // for again.
        meta_->RefreshServerInfo();
        Status up = InlineToBlobs(&chunks);
        if (up.ok()) {
          r = meta_->AddChunks(s->ino, chunks, min_size, /*sync=*/false,
                               attrs ? &attrs->second : nullptr, attrs ? &attrs->first : nullptr);
        }
      }
      if (options_.after_commit) options_.after_commit(s->ino, token, r.ok() ? &*r : nullptr);
      if (!r.ok()) {
        st = Eio(r.status(), "commit chunks");
        spdlog::warn("client.commit ino={} chunks={}: {}", s->ino.value, chunks.size(),
                     r.status().ToString());
        // Only a definite refusal leaves the blobs unreferenced: after a
        // lost reply meta may hold them.
        if (r.status().posix_errno() != 0) {
          for (const Chunk& c : chunks) {
            if (!c.is_inline()) (void)blobs_->Delete(c.file_id);
          }
        }
      } else if (!refused.ok()) {
        st = refused;
      }
    }
    {
      std::lock_guard<std::mutex> g(s->mu);
      for (size_t i = 0; i < n; ++i) s->pending.pop_front();
      if (!st.ok() && s->error.ok()) s->error = st;
      ++s->commit_gen;
      s->chunks.reset();
    }
    s->committed_cv.notify_all();
    AddBuffered(-static_cast<int64_t>(bytes));
  }

  /// Fetches the blobs after `from` (up to readahead_chunks chunks) in the
  /// background. REQUIRES: s->mu held and s->chunks set.
  void Prefetch(const std::shared_ptr<OpenInode>& s, uint64_t from) {
    if (options_.readahead_chunks <= 0 || !s->chunks) return;
    const uint64_t until = from + options_.readahead_chunks * options_.chunk_size;
    for (const Chunk& c : *s->chunks) {
      if (c.offset + c.size <= from || c.offset >= until) continue;
      if (c.is_inline() || cache_.Contains(c.file_id)) continue;
      readahead_.Submit([this, fid = c.file_id] { (void)cache_.Get(fid); });
    }
  }

  void AddBuffered(int64_t delta) {
    if (delta == 0) return;
    {
      std::lock_guard<std::mutex> g(buffer_mu_);
      buffered_ = static_cast<uint64_t>(static_cast<int64_t>(buffered_) + delta);
    }
    if (delta < 0) buffer_cv_.notify_all();
  }

  /// Blocks while the buffers of all files are over the cap, first pushing
  /// every file's dirty extents to the uploaders so the wait ends.
  void WaitForBufferSpace() {
    {
      std::lock_guard<std::mutex> g(buffer_mu_);
      if (buffered_ < options_.max_write_buffer_bytes) return;
    }
    for (auto& s : OpenInodes()) {
      std::lock_guard<std::mutex> g(s->mu);
      SubmitAllLocked(s);
    }
    std::unique_lock<std::mutex> l(buffer_mu_);
    buffer_cv_.wait(l, [&] { return buffered_ < options_.max_write_buffer_bytes; });
  }

  MetaClient* const meta_;
  BlobClient* const blobs_;
  FileClientOptions options_;
  BlobCache cache_;
  std::mutex map_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<OpenInode>> open_;  // GUARDED_BY(map_mu_)
  std::mutex buffer_mu_;
  std::condition_variable buffer_cv_;
  uint64_t buffered_ = 0;  // GUARDED_BY(buffer_mu_): dirty + pending bytes, all files
  std::mutex unstable_mu_;
  // GUARDED_BY(unstable_mu_): volume -> stamp of its latest unstable upload
  // not yet synced by an Fsync.
  std::map<uint32_t, uint64_t> unstable_;
  uint64_t unstable_stamp_ = 0;  // GUARDED_BY(unstable_mu_)
  // Last members: their threads stop (after draining) before the rest goes.
  TaskPool uploads_;
  TaskPool readahead_;
};

FileClient::FileClient(MetaClient* meta, BlobClient* blobs, FileClientOptions options)
    : impl_(std::make_unique<Impl>(meta, blobs, std::move(options))) {}
FileClient::~FileClient() = default;
void FileClient::Open(const InodeAttr& attr, std::optional<std::vector<Chunk>> chunks) {
  impl_->Open(attr, std::move(chunks));
}
void FileClient::Release(InodeId ino) { impl_->Release(ino); }
Status FileClient::Write(InodeId ino, uint64_t offset, std::string_view data) {
  return impl_->Write(ino, offset, data);
}
StatusOr<std::string> FileClient::Read(InodeId ino, uint64_t offset, uint64_t length) {
  return impl_->Read(ino, offset, length);
}
Status FileClient::Flush(InodeId ino) { return impl_->Flush(ino); }
Status FileClient::Fsync(InodeId ino) { return impl_->Fsync(ino); }
std::optional<uint64_t> FileClient::PendingSize(InodeId ino) { return impl_->PendingSize(ino); }
void FileClient::Truncated(InodeId ino, uint64_t size) { impl_->Truncated(ino, size); }
void FileClient::Invalidate(InodeId ino) { impl_->Invalidate(ino); }
void FileClient::InvalidateAll() { impl_->InvalidateAll(); }
uint64_t FileClient::cached_bytes() const { return impl_->cached_bytes(); }

int ErrnoOf(const Status& s) {
  if (s.ok()) return 0;
  return s.posix_errno() != 0 ? s.posix_errno() : EIO;
}

}  // namespace needlefs
