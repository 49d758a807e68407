#include "objstore/volume_copier.h"

#include "common/logging.h"

namespace needlefs {

namespace {
/// Record bytes asked for per fetch.
constexpr size_t kBatchBytes = 4 << 20;
}  // namespace

VolumeCopier::~VolumeCopier() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, st] : staged_) {
    if (st->volume) {
      const std::string collection = st->volume->collection();
      st->volume.reset();
      store_->DropIncoming(id, collection);
    }
  }
}

Status VolumeCopier::Replay(Staged* st, const TailFetcher& fetch, bool final, VolumeCopyResult* r) {
  TailBatch batch;
  for (;;) {
    const uint64_t from = st->volume->log_entries();
    NEEDLEFS_RETURN_IF_ERROR(fetch(from, st->revision, &batch));
    if (st->revision < 0) st->revision = batch.compaction_revision;
    for (const auto& rec : batch.records) {
      NEEDLEFS_RETURN_IF_ERROR(st->volume->AppendRecord(rec));
      r->bytes += rec.size();
    }
    r->entries = st->volume->log_entries();
    if (r->entries != batch.next_entry) {
      return Status::Internal("copy of volume " + std::to_string(st->volume->id().value) +
                              " is at entry " + std::to_string(r->entries) +
                              ", source sent up to " + std::to_string(batch.next_entry));
    }
    r->behind = batch.end_entry - batch.next_entry;
    if (final ? r->behind == 0 : r->behind < kCaughtUpEntries) return Status::OK();
  }
}

StatusOr<VolumeCopyResult> VolumeCopier::Copy(VolumeId id, const std::string& collection,
                                              const TailFetcher& fetch, bool final) {
  std::shared_ptr<Staged> st;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& slot = staged_[id];
    if (!slot) slot = std::make_shared<Staged>();
    if (slot->busy) {
      return Status::Aborted("volume " + std::to_string(id.value) + " is being copied already");
    }
    slot->busy = true;
    st = slot;
  }
  auto drop = [&] {
    std::lock_guard<std::mutex> l(mu_);
    st->volume.reset();
    store_->DropIncoming(id, collection);
    staged_.erase(id);
  };
  VolumeCopyResult r;
  Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!st->volume) {
      // The source's superblock (placement, TTL) comes with its first batch.
      TailBatch first;
      s = fetch(0, -1, &first);
      if (!s.ok()) break;
      store_->DropIncoming(id, collection);
      auto v = store_->OpenIncoming(id, collection, first.replica_placement, first.ttl);
      if (!v.ok()) {
        s = v.status();
        break;
      }
      st->volume = std::move(v).value();
      st->revision = -1;
    }
    s = Replay(st.get(), fetch, final, &r);
    if (s.code() != StatusCode::kAborted) break;
    spdlog::info("volume.copy volume={} source compacted; starting over", id.value);
    st->volume.reset();
    store_->DropIncoming(id, collection);
  }
  if (s.ok() && final) {
    s = st->volume->Sync();
    st->volume.reset();  // closed before its files move
    if (s.ok()) s = store_->ImportIncoming(id, collection);
    if (s.ok()) {
      r.imported = true;
      std::lock_guard<std::mutex> l(mu_);
      staged_.erase(id);
      spdlog::info("volume.copy volume={} imported entries={}", id.value, r.entries);
      return r;
    }
  }
  if (!s.ok()) {
    spdlog::warn("volume.copy volume={} failed: {}", id.value, s.ToString());
    drop();
    return s;
  }
  std::lock_guard<std::mutex> l(mu_);
  st->busy = false;
  return r;
}

}  // namespace needlefs
