// gRPC transport of the volume server admin service: converts requests to
// domain types, calls the Store, converts back (ToGrpc, common/grpc_server.h).
#include "objstore/volume_grpc_service.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/http.h"
#include "common/logging.h"
#include "objstore/volume_copier.h"
#include "volume_server.grpc.pb.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::volume;

void FillInfo(const VolumeStats& st, pb::VolumeInfo* out) {
  out->set_id(st.id.value);
  out->set_collection(st.collection);
  out->set_data_bytes(st.data_bytes);
  out->set_needle_count(st.needle_count);
  out->set_live_bytes(st.live_bytes);
  out->set_garbage_bytes(st.garbage_bytes);
  out->set_deleted_count(st.deleted_count);
  out->set_read_only(st.read_only);
  out->set_read_only_reason(st.read_only_reason);
  out->set_compaction_revision(st.compaction_revision);
  out->set_replication(st.replica_placement.ToString());
  out->set_ttl(Ttl::ToString(st.ttl));
}

/// Reads batches of a volume's log from the source server of a copy.
TailFetcher GrpcTailFetcher(const std::string& source, VolumeId id) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // one record may be as large as a blob
  auto channel = grpc::CreateCustomChannel(source, grpc::InsecureChannelCredentials(), args);
  std::shared_ptr<pb::VolumeServer::Stub> stub = pb::VolumeServer::NewStub(channel);
  return [stub, id](uint64_t from, int revision, TailBatch* out) -> Status {
    pb::ReadVolumeTailRequest req;
    req.set_volume_id(id.value);
    req.set_from_entry(from);
    req.set_compaction_revision(revision);
    pb::ReadVolumeTailResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub->ReadVolumeTail(&ctx, req, &resp), "ReadVolumeTail"));
    auto rp = ReplicaPlacement::Parse(resp.replication());
    if (!rp.ok()) return rp.status();
    out->compaction_revision = static_cast<uint16_t>(resp.compaction_revision());
    out->replica_placement = *rp;
    out->ttl = static_cast<uint16_t>(resp.ttl());
    out->next_entry = resp.next_entry();
    out->end_entry = resp.end_entry();
    out->records.assign(resp.records().begin(), resp.records().end());
    return Status::OK();
  };
}

class Service final : public pb::VolumeServer::Service {
 public:
  explicit Service(Store* store) : store_(store), copier_(store) {}

  grpc::Status AllocateVolume(grpc::ServerContext*, const pb::AllocateVolumeRequest* req,
                              pb::AllocateVolumeResponse*) override {
    auto placement = ReplicaPlacement::Parse(req->replication());
    if (!placement.ok()) return ToGrpc(placement.status());
    auto ttl = Ttl::Parse(req->ttl());
    if (!ttl.ok()) return ToGrpc(ttl.status());
    return ToGrpc(
        store_->AllocateVolume(VolumeId(req->volume_id()), req->collection(), *placement, *ttl));
  }

  grpc::Status VolumeStatus(grpc::ServerContext*, const pb::VolumeStatusRequest* req,
                            pb::VolumeStatusResponse* resp) override {
    if (req->volume_id() != 0) {
      auto v = store_->GetVolume(VolumeId(req->volume_id()));
      if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
      FillInfo(v->Stats(), resp->add_volumes());
      return grpc::Status::OK;
    }
    for (const auto& st : store_->Stats()) FillInfo(st, resp->add_volumes());
    return grpc::Status::OK;
  }

  grpc::Status Compact(grpc::ServerContext* ctx, const pb::CompactRequest* req,
                       grpc::ServerWriter<pb::CompactProgress>* writer) override {
    auto v = store_->GetVolume(VolumeId(req->volume_id()));
    if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
    VolumeStats before = v->Stats();
    pb::CompactProgress msg;
    msg.set_bytes_before(before.data_bytes);
    if (before.garbage_ratio() < req->garbage_threshold()) {
      msg.set_done_all(true);
      msg.set_skipped(true);
      msg.set_bytes_after(before.data_bytes);
      writer->Write(msg);
      return grpc::Status::OK;
    }
    Status s = v->Compact([&](uint64_t done, uint64_t total) {
      if (ctx->IsCancelled()) return;
      pb::CompactProgress p;
      p.set_done(done);
      p.set_total(total);
      writer->Write(p);
    });
    if (!s.ok()) return ToGrpc(s);
    msg.set_done_all(true);
    msg.set_bytes_after(v->Stats().data_bytes);
    writer->Write(msg);
    return grpc::Status::OK;
  }

  grpc::Status MarkReadonly(grpc::ServerContext*, const pb::MarkReadonlyRequest* req,
                            pb::MarkReadonlyResponse*) override {
    auto v = store_->GetVolume(VolumeId(req->volume_id()));
    if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
    return ToGrpc(v->SetReadOnly(req->read_only()));
  }

  grpc::Status DeleteVolume(grpc::ServerContext*, const pb::DeleteVolumeRequest* req,
                            pb::DeleteVolumeResponse*) override {
    return ToGrpc(store_->DeleteVolume(VolumeId(req->volume_id())));
  }

  grpc::Status ReadVolumeTail(grpc::ServerContext*, const pb::ReadVolumeTailRequest* req,
                              pb::ReadVolumeTailResponse* resp) override {
    auto v = store_->GetVolume(VolumeId(req->volume_id()));
    if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
    TailBatch b;
    const size_t max = req->max_bytes() ? req->max_bytes() : (4u << 20);
    Status s = v->ReadTail(req->from_entry(), req->compaction_revision(), max, &b);
    if (!s.ok()) return ToGrpc(s);
    resp->set_compaction_revision(b.compaction_revision);
    resp->set_replication(b.replica_placement.ToString());
    resp->set_ttl(b.ttl);
    resp->set_next_entry(b.next_entry);
    resp->set_end_entry(b.end_entry);
    for (auto& r : b.records) resp->add_records(std::move(r));
    return grpc::Status::OK;
  }

  grpc::Status CopyVolume(grpc::ServerContext*, const pb::CopyVolumeRequest* req,
                          pb::CopyVolumeResponse* resp) override {
    std::string host;
    uint16_t port;
    Status s = SplitHostPort(req->source(), &host, &port);
    if (!s.ok()) return ToGrpc(s);
    const VolumeId id(req->volume_id());
    auto r = copier_.Copy(id, req->collection(), GrpcTailFetcher(req->source(), id), req->final());
    if (!r.ok()) return ToGrpc(r.status());
    resp->set_entries(r->entries);
    resp->set_bytes(r->bytes);
    resp->set_behind(r->behind);
    resp->set_imported(r->imported);
    return grpc::Status::OK;
  }

 private:
  Store* store_;
  VolumeCopier copier_;
};

}  // namespace

StatusOr<std::unique_ptr<VolumeGrpcServer>> VolumeGrpcServer::Start(Store* store,
                                                                    const std::string& ip,
                                                                    uint16_t port) {
  auto service = std::make_unique<Service>(store);
  NEEDLEFS_ASSIGN_OR_RETURN(auto server, GrpcServer::Start({service.get()}, ip, port));
  return std::unique_ptr<VolumeGrpcServer>(
      new GrpcServiceHost<VolumeGrpcServer, Service>(std::move(service), std::move(server)));
}

}  // namespace needlefs
