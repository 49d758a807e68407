// Where a volume lives, as the master's /dir/lookup says, cached per volume
// for a while and asked again on demand (after a replica failed). Shared by
// the blob client and the volume server's replica forwarder and anti-entropy
// replica finder. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/http.h"
#include "common/status.h"

namespace needlefs {

class VolumeLocator {
 public:
  /// `master`: the master's HTTP "host:port"; `pool` (not owned) carries
  /// the lookups; answers stay cached for `ttl_ms`.
  VolumeLocator(std::string master, HttpClientPool* pool, int ttl_ms)
      : master_(std::move(master)), pool_(pool), ttl_(ttl_ms) {}

  /// One server holding a volume.
  struct Replica {
    std::string url;   ///< HTTP "host:port"
    std::string grpc;  ///< gRPC admin "host:port" ("" from an old master)
  };

  /// The "host:port" of every server holding volume `volume_id` (decimal).
  /// `refresh` skips the cache. Errors: kNotFound (the master knows no such
  /// volume), kUnavailable (the master did not answer properly).
  StatusOr<std::vector<std::string>> Lookup(const std::string& volume_id, bool refresh);
  /// The same, with each server's gRPC address.
  StatusOr<std::vector<Replica>> LookupReplicas(const std::string& volume_id, bool refresh);

 private:
  struct Cached {
    std::vector<Replica> servers;
    std::chrono::steady_clock::time_point at;
  };
  const std::string master_;
  HttpClientPool* pool_;
  const std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<std::string, Cached> cache_;  // GUARDED_BY(mu_)
};

}  // namespace needlefs
