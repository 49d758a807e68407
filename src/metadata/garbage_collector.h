// The background consumer of the namespace's garbage queue: deletes the
// blobs (needles) that no file references any more, then acknowledges them.
// Crash-safe: an entry leaves the queue only after its blob is gone, so a
// crash repeats deletes (harmless: deleting a missing blob is success). An
// entry that is not a file id names no blob: it is logged and dropped.
//
// Thread-safe; Stop() (also by the destructor) joins the worker.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/file_id.h"
#include "common/status.h"
#include "metadata/namespace.h"

namespace needlefs {

struct GarbageCollectorOptions {
  /// Pause between passes when the queue is empty or a delete failed.
  /// Default: 2000 ms.
  int interval_ms = 2000;
  /// Entries taken per pass. Default: 256.
  size_t batch = 256;
};

class GarbageCollector {
 public:
  /// `delete_blob(file_id)` deletes one blob; OK also when it is already
  /// gone. An error stops the pass (retried after the interval).
  using DeleteFn = std::function<Status(const FileId& file_id)>;
  GarbageCollector(Namespace* ns, DeleteFn delete_blob, GarbageCollectorOptions options = {});
  ~GarbageCollector();
  GarbageCollector(const GarbageCollector&) = delete;
  GarbageCollector& operator=(const GarbageCollector&) = delete;

  /// Starts the background worker.
  void Start();
  void Stop();
  /// One pass now, on the caller's thread: deletes and acknowledges up to
  /// `batch` entries. Returns how many left the queue (deleted, or dropped
  /// as not a file id). Errors: the first failed delete (entries before it
  /// are acknowledged) or a namespace error.
  StatusOr<size_t> RunOnce();

 private:
  Namespace* ns_;
  DeleteFn delete_blob_;
  GarbageCollectorOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace needlefs
