// Volume compaction (vacuum). Crash-safe swap order (docs/formats.md#vacuum):
//   1. write <base>.cpd / .cpx (and .cpldb), fsync them;
//   2. unlink <base>.idx, fsync dir   (crash: old .dat, index rebuilt by scan)
//   3. rename .cpd -> .dat, fsync dir (the commit point)
//   4. rename .cpx -> .idx, fsync dir (crash before: new .dat, index rebuilt)
// Leftover .cpd/.cpx/.cpldb are removed when a volume opens.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/file.h"
#include "common/logging.h"
#include "objstore/index_file.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {

namespace fs = std::filesystem;

namespace {

/// Appends one raw record to `dst`, with its index entry and map update.
Status CopyRecord(VolumeFiles* dst, const std::string& record, NeedleKey key, uint32_t size,
                  bool tombstone) {
  uint64_t offset = dst->data_end.load();
  NEEDLEFS_RETURN_IF_ERROR(dst->data->WriteAt(offset, record.data(), record.size()));
  IndexEntry e{key, static_cast<uint32_t>(offset / kNeedleAlignment),
               tombstone ? kIndexTombstoneSize : size};
  char ebuf[kIndexEntrySize];
  EncodeIndexEntry(e, ebuf);
  uint64_t idx = dst->index_entries.load();
  NEEDLEFS_RETURN_IF_ERROR(dst->index->WriteAt(idx * kIndexEntrySize, ebuf, sizeof(ebuf)));
  Status s = tombstone ? dst->map->Delete(key, idx + 1)
                       : dst->map->Put(key, NeedleLocation{e.offset_units, size}, idx + 1);
  NEEDLEFS_RETURN_IF_ERROR(s);
  dst->data_end = offset + record.size();
  dst->index_entries = idx + 1;
  return Status::OK();
}

/// Replays old index entries [*from, to) into `dst`, copying their records.
Status CatchUp(const VolumeFiles& src, VolumeFiles* dst, uint64_t* from, uint64_t to) {
  std::string ebuf, rec;
  while (*from < to) {
    uint64_t n = std::min<uint64_t>(to - *from, 4096);
    ebuf.resize(n * kIndexEntrySize);
    NEEDLEFS_RETURN_IF_ERROR(src.index->ReadAt(*from * kIndexEntrySize, ebuf.data(), ebuf.size()));
    for (uint64_t i = 0; i < n; ++i) {
      IndexEntry e = DecodeIndexEntry(ebuf.data() + i * kIndexEntrySize);
      uint32_t body = e.tombstone() ? kTombstoneBodySize : e.size;
      rec.resize(NeedleRecordSize(body));
      NEEDLEFS_RETURN_IF_ERROR(src.data->ReadAt(e.offset_bytes(), rec.data(), rec.size()));
      NEEDLEFS_RETURN_IF_ERROR(CopyRecord(dst, rec, e.key, e.size, e.tombstone()));
    }
    *from += n;
  }
  return Status::OK();
}

}  // namespace

Status Volume::Compact(const CompactProgress& progress) {
  if (compacting_.exchange(true)) {
    return Status::Aborted("volume " + std::to_string(options_.id.value) +
                           " is already being compacted");
  }
  struct Reset {
    std::atomic<bool>* flag;
    ~Reset() { *flag = false; }
  } reset{&compacting_};

  const std::string cpd = base_ + ".cpd", cpx = base_ + ".cpx", cpldb = base_ + ".cpldb";
  auto cleanup = [&] {
    std::error_code ec;
    fs::remove(cpd, ec);
    fs::remove(cpx, ec);
    fs::remove_all(cpldb, ec);
  };

  // Snapshot of the live needles and of the log position they reflect.
  std::shared_ptr<VolumeFiles> old;
  uint64_t from;
  std::vector<std::pair<NeedleKey, NeedleLocation>> live;
  SuperBlock sb;
  uint64_t before_bytes;
  {
    std::lock_guard<std::mutex> al(append_mu_);
    old = files();
    from = old->index_entries.load();
    before_bytes = old->data_end.load();
    std::shared_lock l(mu_);
    sb = super_block_;
    live.reserve(old->map->Count());
    NEEDLEFS_RETURN_IF_ERROR(old->map->ForEach([&live](NeedleKey k, NeedleLocation loc) {
      live.emplace_back(k, loc);
      return true;
    }));
  }
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    return a.second.offset_units < b.second.offset_units;
  });
  sb.compaction_revision = static_cast<uint16_t>(sb.compaction_revision + 1);

  cleanup();
  auto nf = std::make_shared<VolumeFiles>();
  // Before the swap any failure leaves the volume as it was.
  auto abandon = [&](const Status& err) {
    nf.reset();
    cleanup();
    spdlog::error("volume.vacuum id={} failed: {}", options_.id.value, err.ToString());
    return err;
  };
  Status s = [&]() -> Status {
    constexpr int kNew = O_RDWR | O_CREAT | O_TRUNC;
    NEEDLEFS_ASSIGN_OR_RETURN(nf->data, options_.env->NewRandomRWFile(cpd, kNew, 0644));
    NEEDLEFS_ASSIGN_OR_RETURN(nf->index, options_.env->NewRandomRWFile(cpx, kNew, 0644));
    NEEDLEFS_RETURN_IF_ERROR(OpenMap(nf.get(), cpldb, sb.compaction_revision));
    std::string sb_bytes = sb.Encode();
    NEEDLEFS_RETURN_IF_ERROR(nf->data->WriteAt(0, sb_bytes.data(), sb_bytes.size()));
    nf->data_end = kSuperBlockSize;
    std::string rec;
    uint64_t done = 0;
    for (const auto& [key, loc] : live) {
      rec.resize(NeedleRecordSize(loc.size));
      NEEDLEFS_RETURN_IF_ERROR(old->data->ReadAt(loc.offset_bytes(), rec.data(), rec.size()));
      NEEDLEFS_RETURN_IF_ERROR(CopyRecord(nf.get(), rec, key, loc.size, false));
      if (progress && (++done % 1024 == 0 || done == live.size())) progress(done, live.size());
    }
    // Catch up without blocking writers until little is left.
    for (int round = 0; round < 8; ++round) {
      uint64_t to = old->index_entries.load();
      if (to - from < 256) break;
      NEEDLEFS_RETURN_IF_ERROR(CatchUp(*old, nf.get(), &from, to));
    }
    return Status::OK();
  }();
  if (!s.ok()) return abandon(s);

  // Final catch-up and swap, with writers blocked.
  {
    std::lock_guard<std::mutex> al(append_mu_);
    s = [&]() -> Status {
      NEEDLEFS_RETURN_IF_ERROR(CatchUp(*old, nf.get(), &from, old->index_entries.load()));
      NEEDLEFS_RETURN_IF_ERROR(nf->data->DataSync());
      NEEDLEFS_RETURN_IF_ERROR(nf->index->DataSync());
      NEEDLEFS_RETURN_IF_ERROR(nf->map->Flush());
      return Status::OK();
    }();
    if (!s.ok()) return abandon(s);
    // From here on a failure leaves files that recovery understands, but this
    // process can no longer trust its view: go read-only.
    auto fail = [&](const std::string& what) {
      Status e = Status::IOError("vacuum swap: " + what, errno);
      MarkBroken(e.ToString());
      return e;
    };
    if (::unlink((base_ + ".idx").c_str()) != 0) return fail("unlink idx");
    if (!SyncDir(options_.dir).ok()) return fail("sync dir");
    if (::rename(cpd.c_str(), (base_ + ".dat").c_str()) != 0) return fail("rename cpd");
    if (!SyncDir(options_.dir).ok()) return fail("sync dir");
    if (::rename(cpx.c_str(), (base_ + ".idx").c_str()) != 0) return fail("rename cpx");
    if (!SyncDir(options_.dir).ok()) return fail("sync dir");
    uint64_t live_bytes = 0;
    NEEDLEFS_RETURN_IF_ERROR(nf->map->ForEach([&](NeedleKey, NeedleLocation loc) {
      live_bytes += NeedleRecordSize(loc.size);
      return true;
    }));
    std::string map_error;
    {
      std::unique_lock l(mu_);
      if (options_.index_mode == IndexMode::kRocksDb) {
        // RocksDB allows one open per path in a process: close both maps,
        // move the new one into place and reopen it under its final name.
        // Readers reach maps only through files_ under mu_, held here.
        old->map.reset();
        nf->map.reset();
        std::error_code ec;
        fs::remove_all(base_ + ".ldb", ec);
        fs::rename(cpldb, base_ + ".ldb", ec);
        Status ms = ec ? Status::IOError("rename " + cpldb, ec.value())
                       : OpenMap(nf.get(), base_ + ".ldb", sb.compaction_revision);
        if (!ms.ok()) {
          // Serve from memory, rebuilt from the new index log.
          map_error = ms.ToString();
          nf->map = NewMemoryNeedleMap();
          uint64_t max_end = kSuperBlockSize;
          uint64_t entries = nf->index_entries.load();
          nf->index_entries = 0;
          Status ls = LoadIndex(nf.get(), nf->data_end.load(), &max_end);
          if (!ls.ok() || nf->index_entries.load() != entries) map_error += "; " + ls.ToString();
        }
      }
      files_ = nf;
      super_block_ = sb;
      live_bytes_ = live_bytes;
      uint64_t end = nf->data_end.load();
      garbage_bytes_ = end > kSuperBlockSize + live_bytes ? end - kSuperBlockSize - live_bytes : 0;
      deleted_count_ = 0;
    }
    if (!map_error.empty()) MarkBroken("vacuum: reopening the rocksdb index failed: " + map_error);
    if (full_ && nf->data_end.load() < options_.size_limit_bytes) {
      // Space came back: a volume that was only full takes writes again.
      full_ = false;
      std::unique_lock l(mu_);
      if (read_only_reason_ == "volume full") {
        read_only_reason_.clear();
        read_only_ = false;
      }
    }
  }
  spdlog::info("volume.vacuum id={} revision={} bytes_before={} bytes_after={} needles={}",
               options_.id.value, sb.compaction_revision, before_bytes, nf->data_end.load(),
               nf->map->Count());
  return Status::OK();
}

}  // namespace needlefs
