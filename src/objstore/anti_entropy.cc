// Anti-entropy logic: compare digests, pull newer records, run rounds. See
// anti_entropy.h for the rule.
#include "objstore/anti_entropy.h"

#include <prometheus/counter.h>

#include <chrono>

#include "common/logging.h"
#include "common/metrics.h"
#include "objstore/needle.h"

namespace needlefs {
namespace {

/// Records fetched per ReadRecords call: about this many bytes.
constexpr uint64_t kBatchBytes = 4u << 20;
constexpr size_t kBatchRecords = 512;

prometheus::Counter& PulledCounter(const char* kind) {
  return Metrics::Global().Counter("needlefs_volume_anti_entropy_pulled_total",
                                   "Records pulled from another replica by anti-entropy",
                                   {{"kind", kind}});
}

}  // namespace

SyncResult& SyncResult::operator+=(const SyncResult& o) {
  volumes += o.volumes;
  compared += o.compared;
  needles += o.needles;
  tombstones += o.tombstones;
  bytes += o.bytes;
  changed_meanwhile += o.changed_meanwhile;
  errors += o.errors;
  return *this;
}

StatusOr<SyncResult> PullFromReplica(Volume* volume, ReplicaPeer* peer,
                                     const std::atomic<bool>* cancel) {
  if (volume->read_only()) {
    return Status::FailedPrecondition("volume " + std::to_string(volume->id().value) +
                                      " is read-only here");
  }
  // The local digest first: whatever is written after it is newer than
  // anything the peer can offer for that key, and AppendRecordIfUnchanged
  // leaves those keys alone.
  VolumeDigest local, remote;
  NEEDLEFS_RETURN_IF_ERROR(volume->Digest(&local));
  NEEDLEFS_RETURN_IF_ERROR(peer->Digest(volume->id(), &remote).WithContext(peer->name()));
  SyncResult r;
  r.volumes = 1;
  r.compared = remote.entries.size();
  std::vector<DigestEntry> wanted;
  auto mine = local.entries.begin();
  for (const DigestEntry& p : remote.entries) {
    while (mine != local.entries.end() && mine->key < p.key) ++mine;
    const bool have = mine != local.entries.end() && mine->key == p.key;
    if (!have) {
      if (!p.tombstone()) wanted.push_back(p);  // a delete of what we never had: nothing to do
    } else if (!p.SameContent(*mine) && p.append_at_ns > mine->append_at_ns) {
      wanted.push_back(p);
    }
  }
  std::vector<std::string> records;
  Volume::UnchangedSince since;
  since.scanned = local.log_entries;
  for (size_t i = 0; i < wanted.size();) {
    if (cancel && cancel->load()) return Status(StatusCode::kCancelled, "anti-entropy stopping");
    std::vector<DigestEntry> batch;
    uint64_t bytes = 0;
    while (i < wanted.size() && batch.size() < kBatchRecords &&
           (batch.empty() || bytes < kBatchBytes)) {
      bytes += NeedleRecordSize(wanted[i].tombstone() ? kTombstoneBodySize : wanted[i].size);
      batch.push_back(wanted[i++]);
    }
    records.clear();
    NEEDLEFS_RETURN_IF_ERROR(
        peer->ReadRecords(volume->id(), remote.compaction_revision, batch, &records)
            .WithContext(peer->name()));
    if (records.size() != batch.size()) {
      return Status::Unavailable(peer->name() + " returned " + std::to_string(records.size()) +
                                 " records for " + std::to_string(batch.size()));
    }
    for (size_t j = 0; j < batch.size(); ++j) {
      auto appended =
          volume->AppendRecordIfUnchanged(records[j], local.compaction_revision, &since);
      if (!appended.ok()) {
        if (!appended.status().IsCorruption()) return appended.status();
        spdlog::warn("anti_entropy.bad_record volume={} key={} peer={}: {}", volume->id().value,
                     batch[j].key.value, peer->name(), appended.status().ToString());
        ++r.errors;
        continue;
      }
      if (!*appended) {
        ++r.changed_meanwhile;
        continue;
      }
      r.bytes += records[j].size();
      if (batch[j].tombstone()) {
        ++r.tombstones;
        PulledCounter("tombstone").Increment();
      } else {
        ++r.needles;
        PulledCounter("needle").Increment();
      }
    }
  }
  return r;
}

AntiEntropy::AntiEntropy(Store* store, ReplicaFinder finder, const AntiEntropyOptions& options)
    : store_(store), finder_(std::move(finder)), options_(options) {}

AntiEntropy::~AntiEntropy() { Stop(); }

void AntiEntropy::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void AntiEntropy::ReportForRepair(VolumeId id) {
  std::lock_guard<std::mutex> l(mu_);
  if (reported_.count(id)) return;  // already queued; its backoff stands
  reported_[id] = Reported{std::chrono::steady_clock::now() + std::chrono::seconds(1), 0};
  kicked_ = true;
  cv_.notify_all();
}

std::vector<VolumeId> AntiEntropy::NeedingRepair() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<VolumeId> out;
  for (const auto& [id, r] : reported_) out.push_back(id);
  return out;
}

void AntiEntropy::RepairReported() {
  std::vector<VolumeId> due;
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [id, r] : reported_) {
      if (r.next_try <= now) due.push_back(id);
    }
  }
  for (VolumeId id : due) {
    auto v = store_->GetVolume(id);
    Status s;
    if (v) {
      auto r = SyncOne(v.get(), /*ask_peers_to_pull=*/true);
      s = !r.ok()     ? r.status()
          : r->errors ? Status::Unavailable(std::to_string(r->errors) + " errors")
                      : Status::OK();
    }
    std::lock_guard<std::mutex> l(mu_);
    auto it = reported_.find(id);
    if (it == reported_.end()) continue;
    if (s.ok()) {  // repaired, or the volume is gone from this server
      spdlog::info("anti_entropy.repaired volume={}", id.value);
      reported_.erase(it);
      continue;
    }
    it->second.failures++;
    const int backoff_s = std::min(60, 1 << std::min(it->second.failures, 6));
    it->second.next_try = std::chrono::steady_clock::now() + std::chrono::seconds(backoff_s);
    spdlog::warn("anti_entropy.repair_failed volume={} retry_in_s={}: {}", id.value, backoff_s,
                 s.ToString());
  }
}

void AntiEntropy::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StatusOr<SyncResult> AntiEntropy::SyncOne(Volume* v, bool ask_peers_to_pull) {
  if (v->replica_placement().CopyCount() <= 1) {
    return Status::FailedPrecondition("volume " + std::to_string(v->id().value) +
                                      " has a single copy");
  }
  NEEDLEFS_ASSIGN_OR_RETURN(auto peers, finder_(v->id()));
  SyncResult total;
  Status first_error;
  for (auto& peer : peers) {
    if (ask_peers_to_pull) {
      if (Status s = peer->RequestPull(v->id()); !s.ok()) {
        ++total.errors;
        spdlog::warn("anti_entropy.request_pull_failed volume={} peer={}: {}", v->id().value,
                     peer->name(), s.ToString());
        if (first_error.ok()) first_error = s;
      }
    }
    auto r = PullFromReplica(v, peer.get(), &cancel_);
    if (r.ok()) {
      total += *r;
      continue;
    }
    ++total.errors;
    spdlog::warn("anti_entropy.pull_failed volume={} peer={}: {}", v->id().value, peer->name(),
                 r.status().ToString());
    if (first_error.ok()) first_error = r.status();
  }
  if (total.volumes == 0 && !first_error.ok()) return first_error;
  return total;
}

StatusOr<SyncResult> AntiEntropy::SyncVolume(VolumeId id) {
  if (id.value != 0) {
    auto v = store_->GetVolume(id);
    if (!v) return Status::NotFound("volume " + std::to_string(id.value) + " is not here");
    return SyncOne(v.get(), /*ask_peers_to_pull=*/false);
  }
  SyncResult total;
  for (const VolumeStats& st : store_->Stats()) {
    if (st.read_only || st.replica_placement.CopyCount() <= 1) continue;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) break;
    }
    auto v = store_->GetVolume(st.id);
    if (!v) continue;
    auto r = SyncOne(v.get(), /*ask_peers_to_pull=*/false);
    if (r.ok()) {
      total += *r;
    } else {
      ++total.errors;
    }
  }
  return total;
}

void AntiEntropy::Loop() {
  using Clock = std::chrono::steady_clock;
  auto next_round = Clock::now() + std::chrono::milliseconds(options_.interval_ms);
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    // Wake for the next round, or every second while volumes await repair.
    auto wake = options_.interval_ms > 0 ? next_round : Clock::now() + std::chrono::hours(1);
    if (!reported_.empty()) wake = std::min(wake, Clock::now() + std::chrono::seconds(1));
    cv_.wait_until(l, wake, [&] { return stop_ || kicked_; });
    if (stop_) break;
    kicked_ = false;
    l.unlock();
    RepairReported();
    if (options_.interval_ms > 0 && Clock::now() >= next_round) {
      auto r = SyncVolume(VolumeId(0));
      if (r.ok() && (r->pulled() || r->errors)) {
        spdlog::info(
            "anti_entropy.round volumes={} keys={} needles={} tombstones={} bytes={} errors={}",
            r->volumes, r->compared, r->needles, r->tombstones, r->bytes, r->errors);
      }
      next_round = Clock::now() + std::chrono::milliseconds(options_.interval_ms);
    }
    l.lock();
  }
}

}  // namespace needlefs
