// A whole cluster inside the test process for unit tests of the client
// library: a master, one volume server and meta, each the real server
// (MasterServer, VolumeNode, MetaServer) on loopback ports it picks, with
// their data in a temp directory. No child processes, no `needlefs` binary.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cluster/master_server.h"
#include "metadata/meta_server.h"
#include "objstore/volume_node.h"
#include "test_util.h"

namespace needlefs {

class InProcessCluster {
 public:
  /// Starts the three roles; check ok() (a failure is also a test failure).
  explicit InProcessCluster(const std::string& prefix) : tmp_(prefix) {
    MasterOptions mo;
    mo.port = 0;
    mo.grpc_port = 0;
    mo.dir = tmp_.path() + "/master";
    auto master = MasterServer::Start(mo);
    if (!master.ok()) {
      Fail("master", master.status());
      return;
    }
    master_ = std::move(*master);
    StartVolume();
    if (!volume_) return;
    // The first write needs the volume server joined.
    for (int i = 0; i < 200 && master_->node_count() < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    MetaServerOptions meo;
    meo.dir = tmp_.path() + "/meta";
    meo.grpc_port = 0;
    meo.http_port = -1;
    auto meta = MetaServer::Start(meo);
    if (!meta.ok()) {
      Fail("meta", meta.status());
      return;
    }
    meta_ = std::move(*meta);
  }

  bool ok() const { return master_ && volume_ && meta_; }
  std::string meta_address() const { return "127.0.0.1:" + std::to_string(meta_->grpc_port()); }
  std::string master_address() const { return "127.0.0.1:" + std::to_string(master_->http_port()); }
  /// Stops the volume server (its data stays): uploads fail until
  /// StartVolume.
  void StopVolume() { volume_.reset(); }
  void StartVolume() {
    VolumeNodeOptions vo;
    vo.store.dir = tmp_.path() + "/volume";
    vo.store.max_volumes = 8;
    vo.server.port = 0;
    vo.server.grpc_port = 0;
    vo.server.master = master_address();
    vo.master_grpc_port = master_->grpc_port();
    auto node = VolumeNode::Start(vo);
    if (!node.ok()) return Fail("volume server", node.status());
    volume_ = std::move(*node);
  }

 private:
  void Fail(const char* what, const Status& s) { ADD_FAILURE() << what << ": " << s.ToString(); }

  TempDir tmp_;
  std::unique_ptr<MasterServer> master_;
  std::unique_ptr<VolumeNode> volume_;
  std::unique_ptr<MetaServer> meta_;
};

}  // namespace needlefs
