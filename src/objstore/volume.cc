// Volume: open, create, recovery, stats and read-only state. Writes are in
// volume_write.cc, reads in volume_read.cc, compaction in volume_vacuum.cc.
#include "objstore/volume.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "common/group_commit.h"
#include "common/logging.h"
#include "objstore/index_file.h"
#include "objstore/internal/volume_files.h"

namespace needlefs {

namespace fs = std::filesystem;

StatusOr<Durability> ParseDurability(const std::string& s) {
  if (s == "none") return Durability::kNone;
  if (s == "group") return Durability::kGroup;
  if (s == "always") return Durability::kAlways;
  return Status::InvalidArgument("unknown durability '" + s + "' (none, group, always)");
}

const char* DurabilityName(Durability d) {
  switch (d) {
    case Durability::kNone:
      return "none";
    case Durability::kGroup:
      return "group";
    case Durability::kAlways:
      return "always";
  }
  return "?";
}

namespace {

std::string BasePath(const VolumeOptions& o) {
  std::string name = o.collection.empty() ? std::to_string(o.id.value)
                                          : o.collection + "_" + std::to_string(o.id.value);
  return (fs::path(o.dir) / name).string();
}

}  // namespace

Volume::Volume(const VolumeOptions& options) : options_(options), base_(BasePath(options)) {
  committer_ = std::make_unique<GroupCommitter>([this] { return files()->data->DataSync(); });
}

Volume::~Volume() {
  if (files_) Sync().IgnoreError();
}

std::shared_ptr<VolumeFiles> Volume::files() const {
  std::shared_lock l(mu_);
  return files_;
}

uint64_t Volume::sync_count() const { return committer_->sync_count(); }

StatusOr<std::unique_ptr<Volume>> Volume::Open(const VolumeOptions& options, bool create) {
  if (options.dir.empty()) return Status::InvalidArgument("volume dir is empty");
  if (options.env == nullptr) return Status::InvalidArgument("volume env is null");
  if (options.size_limit_bytes > (32ull << 30)) {
    return Status::InvalidArgument("volume size limit above 32 GiB");
  }
  std::unique_ptr<Volume> v(new Volume(options));
  bool exists = PathExists(v->base_ + ".dat");
  if (!exists && !create) {
    return Status::NotFound("volume " + std::to_string(options.id.value) + " not found in " +
                            options.dir);
  }
  if (!exists) NEEDLEFS_RETURN_IF_ERROR(v->Create());
  NEEDLEFS_RETURN_IF_ERROR(v->Load());
  return v;
}

Status Volume::Create() {
  SuperBlock sb;
  sb.replica_placement = options_.replica_placement;
  sb.ttl = options_.ttl;
  // Write the superblock to a temp file and rename it in, so a crash never
  // leaves a data file without a whole superblock.
  std::string tmp = base_ + ".dat.tmp";
  {
    NEEDLEFS_ASSIGN_OR_RETURN(auto f,
                              options_.env->NewRandomRWFile(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644));
    std::string bytes = sb.Encode();
    NEEDLEFS_RETURN_IF_ERROR(f->WriteAt(0, bytes.data(), bytes.size()));
    NEEDLEFS_RETURN_IF_ERROR(f->Sync());
  }
  ::unlink((base_ + ".idx").c_str());
  if (::rename(tmp.c_str(), (base_ + ".dat").c_str()) != 0) {
    return Status::IOError("rename " + tmp, errno);
  }
  spdlog::info("volume.create id={} dir={} replication={} ttl={}", options_.id.value, options_.dir,
               sb.replica_placement.ToString(), Ttl::ToString(sb.ttl));
  return SyncDir(options_.dir);
}

Status Volume::OpenMap(Files* f, const std::string& path, uint16_t revision) {
  if (options_.index_mode == IndexMode::kMemory) {
    f->map = NewMemoryNeedleMap();
    return Status::OK();
  }
  NEEDLEFS_ASSIGN_OR_RETURN(f->map, OpenRocksDbNeedleMap(path, revision));
  return Status::OK();
}

Status Volume::PersistInfo() {
  nlohmann::json j;
  {
    std::shared_lock l(mu_);
    j["read_only"] = read_only_.load() && !full_.load();
    j["reason"] = read_only_reason_;
  }
  return WriteFileAtomic(base_ + ".vif", j.dump());
}

void Volume::MarkBroken(const std::string& reason) {
  {
    std::unique_lock l(mu_);
    read_only_reason_ = reason;
  }
  read_only_ = true;
  spdlog::error("volume.read_only id={} reason=\"{}\"", options_.id.value, reason);
}

Status Volume::SetReadOnly(bool read_only, const std::string& reason) {
  if (!read_only && full_) {
    return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) +
                                      " is full and stays read-only");
  }
  {
    std::unique_lock l(mu_);
    read_only_reason_ = read_only ? reason : "";
    read_only_ = read_only;
  }
  spdlog::info("volume.mark id={} read_only={} reason=\"{}\"", options_.id.value, read_only,
               reason);
  return PersistInfo();
}

Status Volume::Load() {
  // Leftovers of a compaction that did not finish (see volume_vacuum.cc).
  ::unlink((base_ + ".cpd").c_str());
  ::unlink((base_ + ".cpx").c_str());
  std::error_code ec;
  fs::remove_all(base_ + ".cpldb", ec);

  auto f = std::make_shared<VolumeFiles>();
  NEEDLEFS_ASSIGN_OR_RETURN(f->data, options_.env->NewRandomRWFile(base_ + ".dat", O_RDWR, 0644));
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t data_size, f->data->Size());
  std::string sb_bytes(kSuperBlockSize, '\0');
  Status s = f->data->ReadAt(0, sb_bytes.data(), sb_bytes.size());
  if (!s.ok()) return Status::Corruption(base_ + ".dat: superblock unreadable: " + s.ToString());
  auto sb = SuperBlock::Decode(sb_bytes);
  if (!sb.ok()) return sb.status().WithContext(base_ + ".dat");
  super_block_ = *sb;

  auto info = ReadFileToString(base_ + ".vif");
  if (info.ok()) {
    auto j = nlohmann::json::parse(*info, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("read_only", false)) {
      read_only_ = true;
      read_only_reason_ = j.value("reason", std::string("marked read-only"));
    }
  }

  bool had_index = PathExists(base_ + ".idx");
  NEEDLEFS_ASSIGN_OR_RETURN(f->index,
                            options_.env->NewRandomRWFile(base_ + ".idx", O_RDWR | O_CREAT, 0644));
  NEEDLEFS_RETURN_IF_ERROR(OpenMap(f.get(), base_ + ".ldb", super_block_.compaction_revision));

  uint64_t max_end = kSuperBlockSize;
  NEEDLEFS_RETURN_IF_ERROR(LoadIndex(f.get(), data_size, &max_end));
  if (!had_index && data_size > kSuperBlockSize) {
    spdlog::warn("volume.recover id={} index missing, rebuilding from {}", options_.id.value,
                 base_ + ".dat");
  }
  NEEDLEFS_RETURN_IF_ERROR(RecoverTail(f.get(), max_end, data_size));

  // Stats from the loaded map.
  uint64_t live = 0;
  NEEDLEFS_RETURN_IF_ERROR(f->map->ForEach([&live](NeedleKey, NeedleLocation loc) {
    live += NeedleRecordSize(loc.size);
    return true;
  }));
  {
    std::unique_lock l(mu_);
    live_bytes_ = live;
    uint64_t end = f->data_end.load();
    garbage_bytes_ = end > kSuperBlockSize + live ? end - kSuperBlockSize - live : 0;
    files_ = f;
  }
  if (f->data_end.load() >= options_.size_limit_bytes) {
    full_ = true;
    read_only_ = true;
    std::unique_lock l(mu_);
    read_only_reason_ = "volume full";
  }
  spdlog::info("volume.open id={} needles={} data_bytes={} index={} read_only={}",
               options_.id.value, f->map->Count(), f->data_end.load(),
               options_.index_mode == IndexMode::kMemory ? "memory" : "rocksdb", read_only_.load());
  return Status::OK();
}

Status Volume::ApplyEntry(Files* f, const IndexEntry& e, uint64_t applied, bool count_stats) {
  auto old = f->map->Get(e.key);
  if (e.tombstone()) {
    if (count_stats) {
      if (old) {
        live_bytes_ -= NeedleRecordSize(old->size);
        garbage_bytes_ += NeedleRecordSize(old->size);
        ++deleted_count_;
      }
      garbage_bytes_ += NeedleRecordSize(kTombstoneBodySize);
    }
    return f->map->Delete(e.key, applied);
  }
  if (count_stats) {
    if (old) {
      live_bytes_ -= NeedleRecordSize(old->size);
      garbage_bytes_ += NeedleRecordSize(old->size);
      ++deleted_count_;
    }
    live_bytes_ += NeedleRecordSize(e.size);
  }
  return f->map->Put(e.key, NeedleLocation{e.offset_units, e.size}, applied);
}

Status Volume::LoadIndex(Files* f, uint64_t data_size, uint64_t* max_end) {
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t idx_size, f->index->Size());
  uint64_t entries = idx_size / kIndexEntrySize;
  if (idx_size % kIndexEntrySize != 0) {
    spdlog::warn("volume.recover id={} index has a torn entry; cut {} bytes", options_.id.value,
                 idx_size % kIndexEntrySize);
  }
  constexpr uint64_t kBatch = 65536;
  std::string buf;
  // Pass 1: how many entries point inside the data file. Entries are in
  // append order, so everything from the first bad one on is dropped.
  uint64_t valid = 0;
  for (uint64_t i = 0; i < entries && valid == i; i += kBatch) {
    uint64_t n = std::min(kBatch, entries - i);
    buf.resize(n * kIndexEntrySize);
    NEEDLEFS_RETURN_IF_ERROR(f->index->ReadAt(i * kIndexEntrySize, buf.data(), buf.size()));
    for (uint64_t j = 0; j < n; ++j) {
      IndexEntry e = DecodeIndexEntry(buf.data() + j * kIndexEntrySize);
      uint64_t start = e.offset_bytes();
      uint64_t end = start + NeedleRecordSize(e.tombstone() ? kTombstoneBodySize : e.size);
      if (start < kSuperBlockSize || end > data_size) break;
      ++valid;
    }
  }
  if (valid < entries) {
    spdlog::warn("volume.recover id={} dropped {} index entries pointing past the data",
                 options_.id.value, entries - valid);
  }
  if (valid * kIndexEntrySize != idx_size) {
    NEEDLEFS_RETURN_IF_ERROR(f->index->Truncate(valid * kIndexEntrySize));
  }

  uint64_t applied = f->map->AppliedEntries();
  if (applied > valid) {
    // The RocksDB map saw entries the log no longer has: rebuild it.
    spdlog::warn("volume.recover id={} rocksdb index ahead of the log; rebuilding",
                 options_.id.value);
    f->map.reset();
    std::error_code ec;
    fs::remove_all(base_ + ".ldb", ec);
    NEEDLEFS_RETURN_IF_ERROR(OpenMap(f, base_ + ".ldb", super_block_.compaction_revision));
    applied = 0;
  }

  // Pass 2: apply what the map has not seen; find the end of the data.
  IndexEntry last{};
  for (uint64_t i = 0; i < valid; i += kBatch) {
    uint64_t n = std::min(kBatch, valid - i);
    buf.resize(n * kIndexEntrySize);
    NEEDLEFS_RETURN_IF_ERROR(f->index->ReadAt(i * kIndexEntrySize, buf.data(), buf.size()));
    for (uint64_t j = 0; j < n; ++j) {
      IndexEntry e = DecodeIndexEntry(buf.data() + j * kIndexEntrySize);
      uint64_t end =
          e.offset_bytes() + NeedleRecordSize(e.tombstone() ? kTombstoneBodySize : e.size);
      if (i + j >= applied) NEEDLEFS_RETURN_IF_ERROR(ApplyEntry(f, e, i + j + 1, true));
      NoteKey(e.key);
      *max_end = std::max(*max_end, end);
      last = e;
    }
  }
  f->index_entries = valid;

  // The newest indexed record must be the needle the index says it is;
  // otherwise index and data disagree and we cannot tell which is right.
  if (valid > 0) {
    char h[kNeedleHeaderSize];
    Status s = f->data->ReadAt(last.offset_bytes(), h, sizeof(h));
    NeedleHeader hdr = DecodeNeedleHeader(h);
    uint32_t want = last.tombstone() ? kTombstoneBodySize : last.size;
    if (!s.ok() || hdr.key != last.key || hdr.body_size != want) {
      MarkBroken("index does not match the data file at offset " +
                 std::to_string(last.offset_bytes()) + "; needs `volume.check`/rebuild");
    }
  }
  return Status::OK();
}

namespace {

/// Whether a whole, CRC-valid needle starts at `pos` of `buf`; sets *len
/// and, when non-null, *deleted (a tombstone).
bool ValidRecordAt(std::string_view buf, uint64_t pos, uint64_t* len, bool* deleted = nullptr) {
  if (buf.size() - pos < kNeedleHeaderSize) return false;
  NeedleHeader h = DecodeNeedleHeader(buf.data() + pos);
  uint64_t n = NeedleRecordSize(h.body_size);
  if (n > buf.size() - pos) return false;
  auto needle = DecodeNeedle(buf.substr(pos, n));
  if (!needle.ok()) return false;
  *len = n;
  if (deleted) *deleted = needle->deleted();
  return true;
}

}  // namespace

Status Volume::IndexRecovered(Files* f, const IndexEntry& e) {
  char ebuf[kIndexEntrySize];
  EncodeIndexEntry(e, ebuf);
  uint64_t idx = f->index_entries.load();
  NEEDLEFS_RETURN_IF_ERROR(f->index->WriteAt(idx * kIndexEntrySize, ebuf, sizeof(ebuf)));
  NEEDLEFS_RETURN_IF_ERROR(ApplyEntry(f, e, idx + 1, true));
  f->index_entries = idx + 1;
  return Status::OK();
}

Status Volume::RecoverTail(Files* f, uint64_t start, uint64_t data_size) {
  f->data_end = data_size;
  if (start >= data_size) {
    f->data_end = start;
    return Status::OK();
  }
  uint64_t tail = data_size - start;
  constexpr uint64_t kMaxTailScanBytes = 1ull << 30;
  if (tail > kMaxTailScanBytes) {
    // Too much unindexed data to hold for a scan: do it record by record.
    uint64_t pos = start;
    while (pos < data_size) {
      char h[kNeedleHeaderSize];
      if (data_size - pos < kNeedleHeaderSize || !f->data->ReadAt(pos, h, sizeof(h)).ok()) {
        break;
      }
      uint64_t n = NeedleRecordSize(DecodeNeedleHeader(h).body_size);
      if (n > data_size - pos) break;
      std::string rec(n, '\0');
      NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(pos, rec.data(), n));
      auto needle = DecodeNeedle(rec);
      if (!needle.ok()) break;
      NEEDLEFS_RETURN_IF_ERROR(IndexRecovered(
          f,
          IndexEntry{needle->key, static_cast<uint32_t>(pos / 8),
                     needle->deleted() ? kIndexTombstoneSize : DecodeNeedleHeader(h).body_size}));
      pos += n;
    }
    if (pos < data_size) {
      MarkBroken("unreadable record at offset " + std::to_string(pos) +
                 " in a large unindexed tail; left untouched");
    }
    return Status::OK();
  }

  std::string buf(tail, '\0');
  NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(start, buf.data(), tail));
  uint64_t pos = 0;
  uint64_t recovered = 0;
  while (pos < tail) {
    uint64_t n;
    bool deleted;
    if (!ValidRecordAt(buf, pos, &n, &deleted)) break;
    NeedleHeader h = DecodeNeedleHeader(buf.data() + pos);
    NEEDLEFS_RETURN_IF_ERROR(
        IndexRecovered(f, IndexEntry{h.key, static_cast<uint32_t>((start + pos) / 8),
                                     deleted ? kIndexTombstoneSize : h.body_size}));
    pos += n;
    ++recovered;
  }
  if (recovered > 0) {
    spdlog::info("volume.recover id={} indexed {} needles found after the index", options_.id.value,
                 recovered);
  }
  if (pos == tail) {
    f->data_end = data_size;
    return Status::OK();
  }
  // A bad record at `pos`. If any whole valid needle follows it, the bad
  // bytes are not a torn tail: keep everything and go read-only.
  for (uint64_t q = pos + kNeedleAlignment; q + kNeedleHeaderSize <= tail; q += kNeedleAlignment) {
    uint64_t n;
    if (ValidRecordAt(buf, q, &n)) {
      MarkBroken("damaged record at offset " + std::to_string(start + pos) +
                 " is followed by valid needles (offset " + std::to_string(start + q) +
                 "); not cutting data");
      f->data_end = data_size;
      return Status::OK();
    }
  }
  spdlog::warn("volume.recover id={} cut torn tail of {} bytes at offset {}", options_.id.value,
               tail - pos, start + pos);
  NEEDLEFS_RETURN_IF_ERROR(f->data->Truncate(start + pos));
  NEEDLEFS_RETURN_IF_ERROR(f->data->DataSync());
  f->data_end = start + pos;
  return Status::OK();
}

Status Volume::Sync() {
  auto f = files();
  if (!f) return Status::OK();
  std::lock_guard<std::mutex> l(append_mu_);
  NEEDLEFS_RETURN_IF_ERROR(f->data->DataSync());
  NEEDLEFS_RETURN_IF_ERROR(f->index->DataSync());
  std::shared_lock sl(mu_);
  return f->map->Flush();
}

ReplicaPlacement Volume::replica_placement() const {
  std::shared_lock l(mu_);
  return super_block_.replica_placement;
}

VolumeStats Volume::Stats() const {
  VolumeStats st;
  st.id = options_.id;
  st.collection = options_.collection;
  std::shared_lock l(mu_);
  st.data_bytes = files_->data_end.load();
  st.needle_count = files_->map->Count();
  st.max_key = max_key_.load();
  st.live_bytes = live_bytes_;
  st.garbage_bytes = garbage_bytes_;
  st.deleted_count = deleted_count_;
  st.read_only = read_only_.load();
  st.read_only_reason = read_only_reason_;
  st.compaction_revision = super_block_.compaction_revision;
  st.replica_placement = super_block_.replica_placement;
  st.ttl = super_block_.ttl;
  st.index_memory_bytes = files_->map->MemoryBytes();
  return st;
}

Status Volume::Destroy() {
  std::lock_guard<std::mutex> al(append_mu_);
  std::unique_lock l(mu_);
  files_.reset();
  std::error_code ec;
  for (const char* ext : {".dat", ".idx", ".vif", ".cpd", ".cpx"}) fs::remove(base_ + ext, ec);
  fs::remove_all(base_ + ".ldb", ec);
  fs::remove_all(base_ + ".cpldb", ec);
  read_only_ = true;
  read_only_reason_ = "deleted";
  spdlog::info("volume.delete id={}", options_.id.value);
  return SyncDir(options_.dir);
}

}  // namespace needlefs
