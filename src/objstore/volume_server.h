// The volume server (`needlefs volume`): the HTTP blob API over a Store plus
// the gRPC admin service (proto/volume_server.proto).
//
// HTTP (SeaweedFS-compatible):
//   PUT|POST /<fid>   raw body or multipart/form-data -> 201 {"name","size","eTag"};
//                     ?unstable=1 answers once the needle is appended (it
//                     survives kill -9 of the server), without waiting for
//                     the fsync of the durability mode
//   POST /admin/sync?volume=V  fsyncs the volume: unstable writes before it
//                     are durable when it answers 200
//   GET|HEAD /<fid>   ETag, Last-Modified, Content-Type, Range (206/416),
//                     If-None-Match / If-Modified-Since (304), gzip
//   DELETE   /<fid>   -> 202 {"size"}
//   POST /admin/replicate?volume=V&cluster=C  records of a replicated write
//                     or delete from the volume's primary, back to back
//                     (ReplicaForwarder); 409 for another cluster's
//   GET /status (JSON), /metrics (Prometheus), /healthz
// Errors: malformed fid 400, unknown volume or cookie mismatch 404, body too
// large 413, read-only or full volume 409, corrupt needle 500; bodies are
// JSON {"error": ...}.
//
// Thread-safe; Stop() is idempotent and called by the destructor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "objstore/store.h"

namespace needlefs {

struct VolumeServerOptions {
  /// Address for both HTTP and gRPC. Default: 127.0.0.1.
  std::string ip = "127.0.0.1";
  /// HTTP port; 0 picks a free one. Default: 8080.
  uint16_t port = 8080;
  /// gRPC port; 0 picks a free one. Default: 18080 (port + 10000).
  uint16_t grpc_port = 18080;
  /// Largest blob accepted; larger uploads get 413. Default: 256 MiB.
  uint64_t max_file_size_bytes = 256ull << 20;
  /// Compress compressible content (text, JSON, ...) with gzip. Default: on.
  bool compress = true;
  /// The master's HTTP "host:port": writes to volumes with more than one
  /// copy are forwarded to the other replicas it lists. "" = no master (no
  /// replication).
  std::string master;
  /// Time between anti-entropy rounds, in which this server pulls what its
  /// replicated volumes lack from their other replicas (see
  /// objstore/anti_entropy.h); 0 = only when asked (admin volume.check).
  /// Needs `master`. Default: 600,000 ms (10 minutes).
  int anti_entropy_interval_ms = 600'000;
  /// How often volumes that took unstable writes (PUT ?unstable=1) are
  /// synced when no client asked (/admin/sync): bounds how long an
  /// acknowledged unstable write can be lost to a machine crash, as a local
  /// file system's commit interval does. Default: 1000 ms.
  int unstable_sync_interval_ms = 1000;
};

class VolumeServer {
 public:
  /// Starts HTTP and gRPC over `store` (not owned; must outlive the server).
  /// Errors: kUnavailable when a port cannot be bound.
  static StatusOr<std::unique_ptr<VolumeServer>> Start(const VolumeServerOptions& options,
                                                       Store* store);
  ~VolumeServer();
  VolumeServer(const VolumeServer&) = delete;
  VolumeServer& operator=(const VolumeServer&) = delete;

  uint16_t http_port() const;
  uint16_t grpc_port() const;
  /// Volumes reported for repair after a failed replicated write and not yet
  /// repaired (see AntiEntropy::ReportForRepair). Thread-safe.
  std::vector<VolumeId> VolumesNeedingRepair() const;
  /// The cluster id the master announced (see objstore/cluster_id.h).
  void SetClusterId(uint64_t id);
  /// Stops both listeners and waits for requests in flight.
  void Stop();

 private:
  struct Impl;
  explicit VolumeServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
