// The volume role as one unit (`needlefs volume`, and each volume server
// embedded in `needlefs server`): the store of volume files, its HTTP blob
// API and gRPC admin service, and the heartbeat stream to the master.
//
// Thread-safety: the port getters are; Stop() (idempotent, also run by the
// destructor) must not race with itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "objstore/store.h"
#include "objstore/volume_server.h"

namespace needlefs {

struct VolumeNodeOptions {
  StoreOptions store;
  /// Listeners; server.master is the master's HTTP "host:port" ("" = a
  /// lone server: no heartbeats, no replication).
  VolumeServerOptions server;
  /// The master's gRPC port for heartbeats; 0 = its HTTP port + 10000.
  uint16_t master_grpc_port = 0;
  std::string public_url;  ///< what clients use ("" = ip:port)
  std::string data_center = "DefaultDataCenter";
  std::string rack = "DefaultRack";
  /// Volumes 1..N are created when missing (a lone server without a master
  /// has no one else to allocate them).
  uint32_t allocate = 0;
  /// Replica placement of the allocated volumes.
  std::string allocate_replication = "000";
};

class VolumeNode {
 public:
  /// Opens the store, allocates, starts serving and heartbeating. Errors:
  /// the store's (IOError), kInvalidArgument (bad placement or master
  /// address), kUnavailable (ports).
  static StatusOr<std::unique_ptr<VolumeNode>> Start(const VolumeNodeOptions& options);
  ~VolumeNode();
  VolumeNode(const VolumeNode&) = delete;
  VolumeNode& operator=(const VolumeNode&) = delete;

  uint16_t http_port() const;
  uint16_t grpc_port() const;
  /// Stops heartbeats and listeners (waiting for requests in flight) and
  /// syncs every volume. Errors: the sync's. Later calls return OK.
  Status Stop();

  struct Impl;

 private:
  explicit VolumeNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
