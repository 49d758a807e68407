// Private to src/objstore: the set of files a Volume swaps as one unit when a
// compaction finishes. Readers hold a shared_ptr so the old data file stays
// open (and its space allocated) until the last reader is done.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/env.h"
#include "objstore/needle_map.h"

namespace needlefs {

struct VolumeFiles {
  // Opened through VolumeOptions::env; never null once loaded.
  std::unique_ptr<RandomRWFile> data;
  std::unique_ptr<RandomRWFile> index;
  std::unique_ptr<NeedleMap> map;  // guarded by Volume::mu_
  /// Next append offset in bytes (written under the append lock).
  std::atomic<uint64_t> data_end{0};
  /// Entries in the index log (written under the append lock).
  std::atomic<uint64_t> index_entries{0};
};

}  // namespace needlefs
