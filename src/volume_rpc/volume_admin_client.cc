#include "volume_rpc/volume_admin_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "common/grpc_server.h"
#include "common/http.h"
#include "volume_server.grpc.pb.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::volume;

class GrpcVolumeAdminClient final : public VolumeAdminClient {
 public:
  GrpcVolumeAdminClient(std::shared_ptr<grpc::Channel> channel, int timeout_ms)
      : stub_(pb::VolumeServer::NewStub(channel)), timeout_ms_(timeout_ms) {}

  Status AllocateVolume(VolumeId id, const std::string& collection, const std::string& replication,
                        const std::string& ttl) override {
    pb::AllocateVolumeRequest req;
    req.set_volume_id(id.value);
    req.set_collection(collection);
    req.set_replication(replication);
    req.set_ttl(ttl);
    pb::AllocateVolumeResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return FromGrpc(stub_->AllocateVolume(&ctx, req, &resp), "AllocateVolume");
  }

  StatusOr<std::vector<VolumeInfo>> VolumeStatus(VolumeId id) override {
    pb::VolumeStatusRequest req;
    req.set_volume_id(id.value);
    pb::VolumeStatusResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->VolumeStatus(&ctx, req, &resp), "VolumeStatus"));
    std::vector<VolumeInfo> out;
    for (const auto& v : resp.volumes()) {
      VolumeInfo i;
      i.id = VolumeId(v.id());
      i.collection = v.collection();
      i.data_bytes = v.data_bytes();
      i.needle_count = v.needle_count();
      i.live_bytes = v.live_bytes();
      i.garbage_bytes = v.garbage_bytes();
      i.deleted_count = v.deleted_count();
      i.read_only = v.read_only();
      i.read_only_reason = v.read_only_reason();
      i.compaction_revision = v.compaction_revision();
      i.replication = v.replication();
      i.ttl = v.ttl();
      out.push_back(std::move(i));
    }
    return out;
  }

  StatusOr<CompactResult> Compact(
      VolumeId id, double garbage_threshold,
      const std::function<void(uint64_t, uint64_t)>& progress) override {
    pb::CompactRequest req;
    req.set_volume_id(id.value);
    req.set_garbage_threshold(garbage_threshold);
    grpc::ClientContext ctx;
    auto reader = stub_->Compact(&ctx, req);
    pb::CompactProgress msg;
    CompactResult result;
    while (reader->Read(&msg)) {
      if (msg.done_all()) {
        result.skipped = msg.skipped();
        result.bytes_before = msg.bytes_before();
        result.bytes_after = msg.bytes_after();
      } else if (progress) {
        progress(msg.done(), msg.total());
      }
    }
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(reader->Finish(), "Compact"));
    return result;
  }

  Status MarkReadonly(VolumeId id, bool read_only) override {
    pb::MarkReadonlyRequest req;
    req.set_volume_id(id.value);
    req.set_read_only(read_only);
    pb::MarkReadonlyResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return FromGrpc(stub_->MarkReadonly(&ctx, req, &resp), "MarkReadonly");
  }

  Status DeleteVolume(VolumeId id) override {
    pb::DeleteVolumeRequest req;
    req.set_volume_id(id.value);
    pb::DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return FromGrpc(stub_->DeleteVolume(&ctx, req, &resp), "DeleteVolume");
  }

  StatusOr<CopyVolumeResult> CopyVolume(VolumeId id, const std::string& collection,
                                        const std::string& source, bool final) override {
    pb::CopyVolumeRequest req;
    req.set_volume_id(id.value);
    req.set_collection(collection);
    req.set_source(source);
    req.set_final(final);
    pb::CopyVolumeResponse resp;
    grpc::ClientContext ctx;
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->CopyVolume(&ctx, req, &resp), "CopyVolume"));
    CopyVolumeResult r;
    r.entries = resp.entries();
    r.bytes = resp.bytes();
    r.behind = resp.behind();
    r.imported = resp.imported();
    return r;
  }

  StatusOr<SyncVolumeResult> SyncVolume(VolumeId id) override {
    pb::SyncVolumeRequest req;
    req.set_volume_id(id.value);
    pb::SyncVolumeResponse resp;
    grpc::ClientContext ctx;
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->SyncVolume(&ctx, req, &resp), "SyncVolume"));
    SyncVolumeResult r;
    r.volumes = resp.volumes();
    r.compared = resp.compared();
    r.needles = resp.needles();
    r.tombstones = resp.tombstones();
    r.bytes = resp.bytes();
    r.changed_meanwhile = resp.changed_meanwhile();
    r.errors = resp.errors();
    return r;
  }

 private:
  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
  }
  std::unique_ptr<pb::VolumeServer::Stub> stub_;
  int timeout_ms_;
};

}  // namespace

StatusOr<std::unique_ptr<VolumeAdminClient>> VolumeAdminClient::Create(const std::string& hostport,
                                                                       int timeout_ms) {
  std::string host;
  uint16_t port;
  NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(hostport, &host, &port));
  auto channel = grpc::CreateChannel(JoinHostPort(host, port), grpc::InsecureChannelCredentials());
  return std::unique_ptr<VolumeAdminClient>(new GrpcVolumeAdminClient(channel, timeout_ms));
}

}  // namespace needlefs
