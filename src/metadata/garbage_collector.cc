#include "metadata/garbage_collector.h"

#include <prometheus/counter.h>

#include "common/logging.h"
#include "common/metrics.h"

namespace needlefs {

GarbageCollector::GarbageCollector(Namespace* ns, DeleteFn delete_blob,
                                   GarbageCollectorOptions options)
    : ns_(ns), delete_blob_(std::move(delete_blob)), options_(options) {}

GarbageCollector::~GarbageCollector() { Stop(); }

StatusOr<size_t> GarbageCollector::RunOnce() {
  static auto& deleted = Metrics::Global().Counter("needlefs_meta_garbage_blobs_deleted_total",
                                                   "Blobs deleted from the garbage queue");
  NEEDLEFS_ASSIGN_OR_RETURN(auto batch, ns_->PeekGarbage(options_.batch));
  size_t done = 0;
  uint64_t last_seq = 0;
  Status failure;
  size_t dropped = 0;
  for (const auto& [seq, file_id] : batch) {
    auto fid = FileId::Parse(file_id);
    if (!fid.ok()) {
      // No retry can delete a blob by this name: drop the entry.
      spdlog::error("meta.gc_bad_entry seq={} error=\"{}\": dropped", seq, fid.status().ToString());
      ++dropped;
    } else if (Status s = delete_blob_(*fid); !s.ok()) {
      failure = s.WithContext("delete blob " + file_id);
      break;
    }
    last_seq = seq;
    ++done;
  }
  if (done > 0) {
    NEEDLEFS_RETURN_IF_ERROR(ns_->AckGarbage(last_seq));
    deleted.Increment(static_cast<double>(done - dropped));
  }
  if (!failure.ok()) return failure;
  return done;
}

void GarbageCollector::Start() {
  worker_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      l.unlock();
      auto n = RunOnce();
      l.lock();
      if (!n.ok()) {
        spdlog::warn("meta.gc error=\"{}\"", n.status().ToString());
      } else if (*n == options_.batch) {
        continue;  // more waiting: no pause
      }
      cv_.wait_for(l, std::chrono::milliseconds(options_.interval_ms), [this] { return stop_; });
    }
  });
}

void GarbageCollector::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

}  // namespace needlefs
