#include "objstore/volume_node.h"

#include "common/http.h"
#include "objstore/heartbeat.h"

namespace needlefs {

struct VolumeNode::Impl {
  std::unique_ptr<Store> store;
  std::unique_ptr<VolumeServer> server;
  std::unique_ptr<Heartbeater> heartbeat;
  bool stopped = false;
};

VolumeNode::VolumeNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeNode::~VolumeNode() { (void)Stop(); }

StatusOr<std::unique_ptr<VolumeNode>> VolumeNode::Start(const VolumeNodeOptions& options) {
  NEEDLEFS_ASSIGN_OR_RETURN(ReplicaPlacement placement,
                            ReplicaPlacement::Parse(options.allocate_replication));
  std::string mhost;
  uint16_t mport = 0;
  if (!options.server.master.empty()) {
    NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(options.server.master, &mhost, &mport));
  }
  auto impl = std::make_unique<Impl>();
  NEEDLEFS_ASSIGN_OR_RETURN(impl->store, Store::Open(options.store));
  for (uint32_t id = 1; id <= options.allocate; ++id) {
    if (Status s = impl->store->AllocateVolume(VolumeId(id), "", placement, 0); !s.ok()) {
      return s.WithContext("allocate volume " + std::to_string(id));
    }
  }
  NEEDLEFS_ASSIGN_OR_RETURN(impl->server, VolumeServer::Start(options.server, impl->store.get()));
  if (!options.server.master.empty()) {
    HeartbeatOptions ho;
    ho.master =
        JoinHostPort(mhost, options.master_grpc_port ? options.master_grpc_port
                                                     : static_cast<uint16_t>(mport + 10000));
    ho.ip = options.server.ip;
    ho.http_port = impl->server->http_port();
    ho.grpc_port = impl->server->grpc_port();
    ho.public_url = options.public_url;
    ho.data_center = options.data_center;
    ho.rack = options.rack;
    VolumeServer* server = impl->server.get();
    ho.needing_repair = [server] { return server->VolumesNeedingRepair(); };
    ho.on_cluster_id = [server](uint64_t id) { server->SetClusterId(id); };
    impl->heartbeat = Heartbeater::Start(ho, impl->store.get());
  }
  return std::unique_ptr<VolumeNode>(new VolumeNode(std::move(impl)));
}

uint16_t VolumeNode::http_port() const { return impl_->server->http_port(); }
uint16_t VolumeNode::grpc_port() const { return impl_->server->grpc_port(); }

Status VolumeNode::Stop() {
  if (impl_->stopped) return Status::OK();
  impl_->stopped = true;
  if (impl_->heartbeat) impl_->heartbeat->Stop();
  impl_->server->Stop();
  return impl_->store->SyncAll();
}

}  // namespace needlefs
