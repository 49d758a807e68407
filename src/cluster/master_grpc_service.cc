#include "cluster/master_grpc_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>

#include "common/grpc_server.h"
#include "common/http.h"
#include "common/logging.h"
#include "master.grpc.pb.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::master;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Service final : public pb::Master::Service {
 public:
  Service(Topology* topology, MasterOps* ops, uint64_t limit)
      : topology_(topology), ops_(ops), limit_(limit) {}

  grpc::Status Assign(grpc::ServerContext*, const pb::AssignRequest* req,
                      pb::AssignResponse* resp) override {
    AssignRequest a;
    a.count = req->count() ? req->count() : 1;
    a.replication = req->replication();
    a.collection = req->collection();
    a.ttl = req->ttl();
    a.data_center = req->data_center();
    a.rack = req->rack();
    auto r = ops_->Assign(a);
    if (!r.ok()) return ToGrpc(r.status());
    resp->set_fid(r->fid);
    resp->set_url(r->url);
    resp->set_public_url(r->public_url);
    resp->set_count(r->count);
    return grpc::Status::OK;
  }

  grpc::Status LookupVolume(grpc::ServerContext*, const pb::LookupVolumeRequest* req,
                            pb::LookupVolumeResponse* resp) override {
    auto r = ops_->Lookup(VolumeId(req->volume_id()));
    if (!r.ok()) return ToGrpc(r.status());
    for (const auto& l : *r) {
      auto* loc = resp->add_locations();
      loc->set_url(l.node_id);
      loc->set_public_url(l.public_url);
      loc->set_grpc_port(l.grpc_port);
      loc->set_data_center(l.data_center);
      loc->set_rack(l.rack);
    }
    return grpc::Status::OK;
  }

  grpc::Status SendHeartbeat(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::HeartbeatResponse, pb::Heartbeat>* stream) override {
    pb::Heartbeat hb;
    std::string node_id;
    while (!stopping_ && stream->Read(&hb)) {
      NodeInfo node;
      node.id = JoinHostPort(hb.ip(), static_cast<uint16_t>(hb.port()));
      node.public_url = hb.public_url().empty() ? node.id : hb.public_url();
      node.grpc_port = static_cast<uint16_t>(hb.grpc_port());
      if (!hb.data_center().empty()) node.data_center = hb.data_center();
      if (!hb.rack().empty()) node.rack = hb.rack();
      node.max_volumes = static_cast<int>(hb.max_volumes());
      node.disk_free_bytes = hb.disk_free_bytes();
      node.disk_total_bytes = hb.disk_total_bytes();
      std::vector<VolumeReport> vols;
      for (const auto& v : hb.volumes()) {
        VolumeReport r;
        r.id = VolumeId(v.id());
        r.collection = v.collection();
        r.replica_placement =
            ReplicaPlacement::FromByte(static_cast<uint8_t>(v.replica_placement()));
        r.ttl = static_cast<uint16_t>(v.ttl());
        r.size_bytes = v.size();
        r.read_only = v.read_only();
        r.file_count = v.file_count();
        r.garbage_bytes = v.garbage_bytes();
        r.max_file_key = v.max_file_key();
        r.needs_repair = v.needs_repair();
        vols.push_back(std::move(r));
      }
      pb::HeartbeatResponse resp;
      resp.set_volume_size_limit(limit_);
      resp.set_cluster_id(ops_->ClusterId());
      if (hb.delta()) {
        std::vector<VolumeId> deleted;
        for (uint32_t id : hb.deleted_volume_ids()) deleted.push_back(VolumeId(id));
        if (!topology_->ApplyDelta(node, vols, deleted, NowMs())) {
          spdlog::info("master.node_unknown node={}: asking for its full state", node.id);
          resp.set_send_full_state(true);
        }
      } else {
        if (node_id.empty()) {
          spdlog::info("master.node_joined node={} dc={} rack={} volumes={}", node.id,
                       node.data_center, node.rack, vols.size());
        }
        topology_->UpdateNode(node, vols, NowMs());
      }
      node_id = node.id;
      if (!stream->Write(resp)) break;
    }
    (void)ctx;
    return grpc::Status::OK;
  }

  void Stop() { stopping_ = true; }

 private:
  Topology* topology_;
  MasterOps* ops_;
  uint64_t limit_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

StatusOr<std::unique_ptr<MasterGrpcServer>> MasterGrpcServer::Start(Topology* topology,
                                                                    MasterOps* ops, uint64_t limit,
                                                                    const std::string& ip,
                                                                    uint16_t port) {
  auto service = std::make_unique<Service>(topology, ops, limit);
  NEEDLEFS_ASSIGN_OR_RETURN(auto server, GrpcServer::Start({service.get()}, ip, port));
  return std::unique_ptr<MasterGrpcServer>(new GrpcServiceHost<MasterGrpcServer, Service>(
      std::move(service), std::move(server), [](Service& s) { s.Stop(); }));
}

}  // namespace needlefs
