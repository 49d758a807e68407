// Replicated writes: after a volume server stores a PUT or DELETE locally, it
// forwards the same request to the volume's other replicas, found through the
// master's /dir/lookup (cached for 10 s, refreshed when a replica fails).
// The client's request succeeds only when every replica succeeded.
//
// Forwarded requests carry `type=replicate` so the receiver does not forward
// them again. Writes travel as the records the primary stored
// (ReplicateRecord), batched per volume: while one batch is on the wire, the
// writes arriving meanwhile queue up and leave together in the next, so a
// busy volume pays one request and one replica fsync per batch, not per
// write. Thread-safe.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http.h"
#include "common/status.h"
#include "common/types.h"
#include "objstore/cluster_id.h"
#include "volume_rpc/volume_locator.h"

namespace needlefs {

class ReplicaForwarder {
 public:
  /// `master`: the master's HTTP "host:port". `self`: this server's
  /// "ip:port" as the master knows it (excluded from the targets).
  /// `cluster_id`: this server's cluster (objstore/cluster_id.h), stamped
  /// on every batch.
  ReplicaForwarder(std::string master, std::string self, ClusterIdCell cluster_id);
  /// Stops the sender threads (records still queued fail with kAborted).
  ~ReplicaForwarder();
  ReplicaForwarder(const ReplicaForwarder&) = delete;
  ReplicaForwarder& operator=(const ReplicaForwarder&) = delete;

  /// Sends `method target` with `body`/`headers` to every other replica of
  /// `volume` in parallel. A replica answering one of `ok_statuses` counts
  /// as done. Errors: kUnavailable naming each replica that failed (or the
  /// master lookup), kFailedPrecondition when fewer replicas than `copies`
  /// exist (the volume is under-replicated).
  Status Forward(VolumeId volume, int copies, const std::string& method, const std::string& target,
                 const std::string& body, const HttpHeaders& headers,
                 const std::vector<int>& ok_statuses);

  /// A record on its way to the other replicas (see Enqueue).
  class Ticket;

  /// Queues `record` (as Volume::Write or Delete stored it here) for every
  /// other replica of `volume` and returns at once. The volume's sender
  /// thread (one per volume this server has replicated, kept until the
  /// forwarder ends) posts what is queued as one batch (POST
  /// /admin/replicate): one request per replica, one durability wait there.
  /// Records of a volume leave in the order they were queued. Does not
  /// block on the network.
  std::shared_ptr<Ticket> Enqueue(VolumeId volume, int copies, std::string record);
  /// Waits until the batch holding the ticket's record is durable on every
  /// replica. Errors: as Forward.
  Status Wait(const std::shared_ptr<Ticket>& ticket);

  /// GETs `target` from the first other replica of `volume` that answers
  /// 200 (read repair). Errors: kNotFound (no replica has it), kUnavailable.
  StatusOr<HttpClientResponse> FetchFromReplica(VolumeId volume, const std::string& target,
                                                const HttpHeaders& headers);

 private:
  StatusOr<std::vector<std::string>> Locations(VolumeId volume, bool refresh);

  /// One volume's queue of records and the thread that sends them.
  struct Sender;
  /// The volume's sender, started on first use; null once stopping.
  Sender* SenderFor(VolumeId volume);
  void SendLoop(VolumeId volume, Sender* s);

  const std::string self_;
  const ClusterIdCell cluster_id_;
  HttpClientPool pool_{30'000};
  std::mutex senders_mu_;
  std::map<VolumeId, std::unique_ptr<Sender>> senders_;  // GUARDED_BY(senders_mu_)
  bool stopping_ = false;                                // GUARDED_BY(senders_mu_)
  VolumeLocator locator_;                                // the replicas, cached for 10 s
};

/// Appends `key=value` to a request target's query.
std::string AddQueryParam(const std::string& target, const std::string& key,
                          const std::string& value);

}  // namespace needlefs
