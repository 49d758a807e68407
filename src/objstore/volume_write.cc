// Volume write path: append needle, then index entry, then wait for
// durability (none / group / always).
#include <chrono>

#include "common/endian.h"
#include "common/group_commit.h"
#include "common/logging.h"
#include "objstore/index_file.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Status Volume::AppendLocked(Files* f, const std::string& record, const IndexEntry& entry) {
  const uint64_t offset = f->data_end.load();
  Status s = f->data->WriteAt(offset, record.data(), record.size());
  if (!s.ok()) {
    // Leave no half record behind; if even that fails, recovery cuts it.
    f->data->Truncate(offset).IgnoreError();
    if (s.code() != StatusCode::kResourceExhausted)
      MarkBroken("data write failed: " + s.ToString());
    return s;
  }
  char ebuf[kIndexEntrySize];
  EncodeIndexEntry(entry, ebuf);
  const uint64_t idx = f->index_entries.load();
  s = f->index->WriteAt(idx * kIndexEntrySize, ebuf, sizeof(ebuf));
  if (!s.ok()) {
    // The needle is in the data file; the index is rebuilt from it at the
    // next open. Stop taking writes until then.
    MarkBroken("index write failed: " + s.ToString());
    return s;
  }
  {
    std::unique_lock l(mu_);
    s = ApplyEntry(f, entry, idx + 1, true);
  }
  if (!s.ok()) {
    MarkBroken("index map update failed: " + s.ToString());
    return s;
  }
  f->data_end = offset + record.size();
  f->index_entries = idx + 1;
  NoteKey(entry.key);
  return Status::OK();
}

StatusOr<uint64_t> Volume::IssueLocked(Files* f) {
  const uint64_t seq = ++write_seq_;
  committer_->Issued(seq);
  if (options_.durability == Durability::kAlways) {
    Status s = f->data->DataSync();
    if (!s.ok()) {
      MarkBroken("fdatasync failed: " + s.ToString());
      return s;
    }
  }
  return seq;
}

Status Volume::WaitDurable(uint64_t seq) {
  if (options_.durability != Durability::kGroup) return Status::OK();
  Status s = committer_->WaitDurable(seq);
  if (!s.ok()) MarkBroken("fdatasync failed: " + s.ToString());
  return s;
}

Status Volume::SyncAppends() {
  unstable_pending_.store(false);
  uint64_t seq;
  {
    // Under the append lock every write numbered so far is also Issued.
    std::lock_guard<std::mutex> al(append_mu_);
    seq = write_seq_.load();
  }
  if (seq == 0) return Status::OK();
  Status s = committer_->WaitDurable(seq);
  if (!s.ok()) {
    unstable_pending_.store(true);
    MarkBroken("fdatasync failed: " + s.ToString());
  }
  return s;
}

StatusOr<WriteResult> Volume::Write(Needle n, const RecordHook& appended, bool wait_durable) {
  auto refuse = [this]() {
    std::shared_lock l(mu_);
    return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) +
                                      " is read-only: " + read_only_reason_);
  };
  if (read_only_) return refuse();
  n.flags &= static_cast<uint8_t>(~kFlagDeleted);
  n.append_at_ns = NowNs();
  NEEDLEFS_ASSIGN_OR_RETURN(std::string record, EncodeNeedle(n));
  NeedleHeader h = DecodeNeedleHeader(record.data());

  uint64_t seq;
  {
    std::lock_guard<std::mutex> al(append_mu_);
    if (read_only_) return refuse();
    auto f = files();
    if (f->data_end.load() + record.size() > options_.size_limit_bytes) {
      full_ = true;
      {
        std::unique_lock l(mu_);
        read_only_reason_ = "volume full";
      }
      read_only_ = true;
      spdlog::info("volume.full id={} data_bytes={}", options_.id.value, f->data_end.load());
      return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) + " is full");
    }
    std::optional<NeedleLocation> old;
    {
      std::shared_lock l(mu_);
      old = f->map->Get(n.key);
    }
    if (old) {
      char oh[kNeedleHeaderSize];
      NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(old->offset_bytes(), oh, sizeof(oh)));
      if (DecodeNeedleHeader(oh).cookie != n.cookie) {
        return Status::NotFound("cookie mismatch for existing needle " +
                                std::to_string(n.key.value));
      }
    }
    IndexEntry e{n.key, static_cast<uint32_t>(f->data_end.load() / kNeedleAlignment), h.body_size};
    NEEDLEFS_RETURN_IF_ERROR(AppendLocked(f.get(), record, e));
    if (appended) appended(record);
    NEEDLEFS_ASSIGN_OR_RETURN(seq, IssueLocked(f.get()));
  }
  if (wait_durable) {
    NEEDLEFS_RETURN_IF_ERROR(WaitDurable(seq));
  } else {
    unstable_pending_.store(true);
  }
  return WriteResult{static_cast<uint32_t>(n.data.size()), n.data_crc};
}

StatusOr<uint32_t> Volume::Delete(NeedleKey key, Cookie cookie, const RecordHook& appended) {
  uint64_t seq;
  uint32_t size;
  {
    std::lock_guard<std::mutex> al(append_mu_);
    if (read_only_) {
      std::shared_lock l(mu_);
      return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) +
                                        " is read-only: " + read_only_reason_);
    }
    auto f = files();
    std::optional<NeedleLocation> loc;
    {
      std::shared_lock l(mu_);
      loc = f->map->Get(key);
    }
    if (!loc) return Status::NotFound("needle " + std::to_string(key.value) + " not found");
    char h[kNeedleHeadSize];
    NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(loc->offset_bytes(), h, sizeof(h)));
    if (DecodeNeedleHeader(h).cookie != cookie) {
      return Status::NotFound("needle " + std::to_string(key.value) + " not found (cookie)");
    }
    size = DecodeFixed32(h + kNeedleHeaderSize);
    Needle tomb;
    tomb.key = key;
    tomb.cookie = cookie;
    tomb.flags = kFlagDeleted;
    tomb.append_at_ns = NowNs();
    NEEDLEFS_ASSIGN_OR_RETURN(std::string record, EncodeNeedle(tomb));
    IndexEntry e{key, static_cast<uint32_t>(f->data_end.load() / kNeedleAlignment),
                 kIndexTombstoneSize};
    NEEDLEFS_RETURN_IF_ERROR(AppendLocked(f.get(), record, e));
    if (appended) appended(record);
    NEEDLEFS_ASSIGN_OR_RETURN(seq, IssueLocked(f.get()));
  }
  NEEDLEFS_RETURN_IF_ERROR(WaitDurable(seq));
  return size;
}

}  // namespace needlefs
