// Volume copy, source and target side: ReadTail streams the append log (index
// entries and their raw records) of a volume; AppendRecord replays them on
// another server. Because records are replayed in log order from the same
// superblock layout, the copy's records sit at the same offsets as the
// source's, and its entry count is the source entry to read next (see docs/formats.md#copy).
#include <algorithm>

#include "common/logging.h"
#include "objstore/index_file.h"
#include "objstore/internal/volume_files.h"
#include "objstore/volume.h"

namespace needlefs {

uint64_t Volume::log_entries() const { return files()->index_entries.load(); }

Status Volume::ReadTail(uint64_t from_entry, int revision, size_t max_bytes, TailBatch* out) const {
  std::shared_ptr<VolumeFiles> f;
  {
    std::shared_lock l(mu_);
    f = files_;
    out->compaction_revision = super_block_.compaction_revision;
    out->replica_placement = super_block_.replica_placement;
    out->ttl = super_block_.ttl;
  }
  if (revision >= 0 && revision != out->compaction_revision) {
    return Status::Aborted("volume " + std::to_string(options_.id.value) +
                           " was compacted (revision " + std::to_string(revision) + " -> " +
                           std::to_string(out->compaction_revision) + "): copy again");
  }
  const uint64_t end = f->index_entries.load();
  if (from_entry > end) {
    return Status::OutOfRange("entry " + std::to_string(from_entry) + " is past the log end " +
                              std::to_string(end));
  }
  out->end_entry = end;
  out->records.clear();
  out->bytes = 0;
  uint64_t next = from_entry;
  std::string ebuf;
  while (next < end && (out->records.empty() || out->bytes < max_bytes)) {
    const uint64_t n = std::min<uint64_t>(end - next, 1024);
    ebuf.resize(n * kIndexEntrySize);
    NEEDLEFS_RETURN_IF_ERROR(f->index->ReadAt(next * kIndexEntrySize, ebuf.data(), ebuf.size()));
    for (uint64_t i = 0; i < n && (out->records.empty() || out->bytes < max_bytes); ++i) {
      const IndexEntry e = DecodeIndexEntry(ebuf.data() + i * kIndexEntrySize);
      std::string rec(NeedleRecordSize(e.tombstone() ? kTombstoneBodySize : e.size), '\0');
      NEEDLEFS_RETURN_IF_ERROR(f->data->ReadAt(e.offset_bytes(), rec.data(), rec.size()));
      out->bytes += rec.size();
      out->records.push_back(std::move(rec));
      ++next;
    }
  }
  out->next_entry = next;
  return Status::OK();
}

Status Volume::AppendRecord(std::string_view record) {
  return AppendRaw(record, -1, nullptr).status();
}

StatusOr<bool> Volume::AppendRecordIfUnchanged(std::string_view record, int revision,
                                               UnchangedSince* since) {
  if (revision < 0 || !since) {
    return Status::InvalidArgument("AppendRecordIfUnchanged needs a revision and a cursor");
  }
  return AppendRaw(record, revision, since);
}

StatusOr<bool> Volume::AppendRaw(std::string_view record, int revision, UnchangedSince* since) {
  uint64_t seq = 0;
  NEEDLEFS_ASSIGN_OR_RETURN(bool appended, AppendRawNoWait(record, revision, since, &seq));
  if (appended) NEEDLEFS_RETURN_IF_ERROR(WaitDurable(seq));
  return appended;
}

Status Volume::AppendRecords(const std::vector<std::string_view>& records) {
  uint64_t last = 0;
  Status first;
  for (std::string_view r : records) {
    uint64_t seq = 0;
    auto appended = AppendRawNoWait(r, -1, nullptr, &seq);
    if (!appended.ok()) {
      first = appended.status();
      break;
    }
    last = std::max(last, seq);
  }
  if (last) {
    Status s = WaitDurable(last);
    if (first.ok()) first = s;
  }
  return first;
}

StatusOr<bool> Volume::AppendRawNoWait(std::string_view record, int revision, UnchangedSince* since,
                                       uint64_t* seq_out) {
  if (record.size() < kNeedleHeaderSize) return Status::Corruption("record shorter than a header");
  NEEDLEFS_ASSIGN_OR_RETURN(Needle n, DecodeNeedle(record));
  const NeedleHeader h = DecodeNeedleHeader(record.data());
  const std::string padded(
      record.substr(0, std::min<size_t>(record.size(), NeedleRecordSize(h.body_size))));
  if (padded.size() != NeedleRecordSize(h.body_size)) {
    return Status::Corruption("record of needle " + std::to_string(h.key.value) + " is short");
  }
  if (n.deleted() && (h.body_size != kTombstoneBodySize || !n.data.empty())) {
    // The index would record it as a tombstone of a different size than
    // the data file holds.
    return Status::Corruption("tombstone of needle " + std::to_string(h.key.value) +
                              " has a body of " + std::to_string(h.body_size) + " bytes");
  }
  {
    std::lock_guard<std::mutex> al(append_mu_);
    if (read_only_) {
      std::shared_lock l(mu_);
      return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) +
                                        " is read-only: " + read_only_reason_);
    }
    auto f = files();
    if (f->data_end.load() + padded.size() > options_.size_limit_bytes) {
      return Status::FailedPrecondition("volume " + std::to_string(options_.id.value) +
                                        " has no room for a record of " +
                                        std::to_string(padded.size()) + " bytes");
    }
    if (since) {
      // Compaction swaps files under the append lock: the revision and the
      // log cannot change under us from here on.
      uint16_t current;
      {
        std::shared_lock l(mu_);
        current = super_block_.compaction_revision;
      }
      if (current != revision) {
        return Status::Aborted("volume " + std::to_string(options_.id.value) +
                               " was compacted since the digest");
      }
      // Only the entries appended since the previous call are read.
      const uint64_t end = f->index_entries.load();
      if (since->scanned > end) return Status::OutOfRange("digest is past the log end");
      std::string ebuf;
      while (since->scanned < end) {
        const uint64_t count = std::min<uint64_t>(end - since->scanned, 1024);
        ebuf.resize(count * kIndexEntrySize);
        NEEDLEFS_RETURN_IF_ERROR(
            f->index->ReadAt(since->scanned * kIndexEntrySize, ebuf.data(), ebuf.size()));
        for (uint64_t i = 0; i < count; ++i) {
          since->touched.insert(DecodeIndexEntry(ebuf.data() + i * kIndexEntrySize).key.value);
        }
        since->scanned += count;
      }
      if (since->touched.count(h.key.value)) return false;
    }
    IndexEntry e{h.key, static_cast<uint32_t>(f->data_end.load() / kNeedleAlignment),
                 n.deleted() ? kIndexTombstoneSize : h.body_size};
    NEEDLEFS_RETURN_IF_ERROR(AppendLocked(f.get(), padded, e));
    NEEDLEFS_ASSIGN_OR_RETURN(*seq_out, IssueLocked(f.get()));
  }
  return true;
}

}  // namespace needlefs
