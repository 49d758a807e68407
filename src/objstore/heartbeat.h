// The volume server's side of the master heartbeat: a background stream to
// the master carrying this server's identity and its volumes: the full list
// when the stream opens (and when the master asks for it), then every
// `pulse_ms` only the volumes whose report changed and the ids of those
// gone. A new or deleted volume, or one turning read-only or writable, is
// reported within 250 ms instead of waiting for the pulse. gRPC stays in
// heartbeat.cc.
//
// Thread-safe; Stop() (also the destructor) ends the stream and joins.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "objstore/store.h"

namespace needlefs {

struct HeartbeatOptions {
  /// Master gRPC address "host:port". Required.
  std::string master;
  std::string ip = "127.0.0.1";  ///< this server's address
  uint16_t http_port = 0;
  uint16_t grpc_port = 0;
  std::string public_url;  ///< "" = ip:http_port
  std::string data_center = "DefaultDataCenter";
  std::string rack = "DefaultRack";
  /// Interval between heartbeats. Default: 2000 ms.
  int pulse_ms = 2000;
  /// The volumes reported for repair (AntiEntropy::NeedingRepair); null =
  /// none. Called from the heartbeat thread.
  std::function<std::vector<VolumeId>()> needing_repair;
  /// Receives the cluster id from each answer of the master; null = ignore.
  std::function<void(uint64_t)> on_cluster_id;
};

class Heartbeater {
 public:
  /// Starts the background stream (reconnecting while the master is away).
  static std::unique_ptr<Heartbeater> Start(const HeartbeatOptions& options, Store* store);
  virtual ~Heartbeater() = default;
  virtual void Stop() = 0;
};

}  // namespace needlefs
