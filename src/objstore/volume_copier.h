// The target side of copying a volume from another volume server (repair of
// an under-replicated volume, balance): the source's append log is replayed
// into a staging copy (Store::OpenIncoming) in rounds, then imported so the
// store serves it. The transport that reads the source (a ReadVolumeTail
// gRPC call) is passed in, so this stays free of gRPC.
//
// A copy runs in two calls so the caller (the master) can stop writes for
// the last step: Copy(final=false) replays until the copy is nearly caught
// up (fewer than kCaughtUpEntries behind) and keeps the staging copy open;
// Copy(final=true) replays the rest and imports it.
//
// Thread-safe; one copy per volume at a time (a second gets kAborted).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "common/types.h"
#include "objstore/store.h"

namespace needlefs {

/// Reads one batch of the source volume's log from `from_entry` (see
/// Volume::ReadTail; `revision` < 0 = any).
using TailFetcher = std::function<Status(uint64_t from_entry, int revision, TailBatch* out)>;

/// What a Copy call did.
struct VolumeCopyResult {
  uint64_t entries = 0;   ///< log entries in the copy so far
  uint64_t bytes = 0;     ///< record bytes replayed by this call
  uint64_t behind = 0;    ///< entries the source had beyond the copy at the last read
  bool imported = false;  ///< the store serves the copy now
};

class VolumeCopier {
 public:
  /// A copy less than this many entries behind its source is caught up
  /// enough for the final (write-stopped) step.
  static constexpr uint64_t kCaughtUpEntries = 256;

  explicit VolumeCopier(Store* store) : store_(store) {}
  ~VolumeCopier();

  /// Copies volume `id` of `collection` in through `fetch`, resuming the
  /// staging copy an earlier call left. With `final`, replays to the end of
  /// the source's log and imports the copy. A compaction of the source
  /// restarts the copy from scratch (at most twice). Errors:
  /// kAlreadyExists (the store serves the volume), kAborted (a copy of it is
  /// running), kResourceExhausted (no slot), the fetcher's errors, IOError;
  /// on any error the staging copy is dropped.
  StatusOr<VolumeCopyResult> Copy(VolumeId id, const std::string& collection,
                                  const TailFetcher& fetch, bool final);

 private:
  struct Staged {
    std::unique_ptr<Volume> volume;
    int revision = -1;  ///< the source's compaction revision being copied
    bool busy = false;
  };
  Status Replay(Staged* st, const TailFetcher& fetch, bool final, VolumeCopyResult* r);

  Store* store_;
  std::mutex mu_;
  std::map<VolumeId, std::shared_ptr<Staged>> staged_;  // GUARDED_BY(mu_)
};

}  // namespace needlefs
