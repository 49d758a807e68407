// Replicated writes: after a volume server stores a PUT or DELETE locally, it
// forwards the same request to the volume's other replicas, found through the
// master's /dir/lookup (cached for 10 s, refreshed when a replica fails).
// The client's request succeeds only when every replica succeeded.
//
// Forwarded requests carry `type=replicate` so the receiver does not forward
// them again. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "client/volume_locator.h"
#include "common/http.h"
#include "common/status.h"
#include "common/types.h"

namespace needlefs {

class ReplicaForwarder {
 public:
  /// `master`: the master's HTTP "host:port". `self`: this server's
  /// "ip:port" as the master knows it (excluded from the targets).
  ReplicaForwarder(std::string master, std::string self)
      : self_(std::move(self)), locator_(std::move(master), &pool_, 10'000) {}

  /// Sends `method target` with `body`/`headers` to every other replica of
  /// `volume` in parallel. A replica answering one of `ok_statuses` counts
  /// as done. Errors: kUnavailable naming each replica that failed (or the
  /// master lookup), kFailedPrecondition when fewer replicas than `copies`
  /// exist (the volume is under-replicated).
  Status Forward(VolumeId volume, int copies, const std::string& method, const std::string& target,
                 const std::string& body, const HttpHeaders& headers,
                 const std::vector<int>& ok_statuses);

  /// GETs `target` from the first other replica of `volume` that answers
  /// 200 (read repair). Errors: kNotFound (no replica has it), kUnavailable.
  StatusOr<HttpClientResponse> FetchFromReplica(VolumeId volume, const std::string& target,
                                                const HttpHeaders& headers);

 private:
  StatusOr<std::vector<std::string>> Locations(VolumeId volume, bool refresh);

  const std::string self_;
  HttpClientPool pool_{30'000};
  VolumeLocator locator_;  // the replicas, cached for 10 s
};

/// Appends `key=value` to a request target's query.
std::string AddQueryParam(const std::string& target, const std::string& key,
                          const std::string& value);

}  // namespace needlefs
