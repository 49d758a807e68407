// gRPC transport of the volume server admin service: converts requests to
// domain types, calls the Store, converts back (ToGrpc, common/grpc_server.h).
#include "objstore/volume_grpc_service.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/http.h"
#include "common/logging.h"
#include "objstore/anti_entropy.h"
#include "objstore/internal/anti_entropy_wire.h"
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
  Service(Store* store, AntiEntropy* anti_entropy, ClusterIdCell cluster_id)
      : store_(store),
        anti_entropy_(anti_entropy),
        cluster_id_(std::move(cluster_id)),
        copier_(store) {}

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

  grpc::Status VolumeDigest(grpc::ServerContext*, const pb::VolumeDigestRequest* req,
                            grpc::ServerWriter<pb::VolumeDigestChunk>* writer) override {
    if (Status s = CheckCluster(req->cluster_id()); !s.ok()) return ToGrpc(s);
    auto v = store_->GetVolume(VolumeId(req->volume_id()));
    if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
    ::needlefs::VolumeDigest d;
    if (Status s = v->Digest(&d); !s.ok()) return ToGrpc(s);
    constexpr size_t kPerChunk = 65536;  // 1.8 MB messages
    size_t at = 0;
    do {
      const size_t n = std::min(kPerChunk, d.entries.size() - at);
      pb::VolumeDigestChunk chunk;
      chunk.set_compaction_revision(d.compaction_revision);
      chunk.set_log_entries(d.log_entries);
      EncodeDigestEntries(d.entries.data() + at, n, chunk.mutable_entries());
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "client left");
      at += n;
    } while (at < d.entries.size());
    return grpc::Status::OK;
  }

  grpc::Status ReadRecords(grpc::ServerContext*, const pb::ReadRecordsRequest* req,
                           pb::ReadRecordsResponse* resp) override {
    if (Status s = CheckCluster(req->cluster_id()); !s.ok()) return ToGrpc(s);
    if (req->keys_size() != req->offset_units_size()) {
      return ToGrpc(Status::InvalidArgument("keys and offset_units differ in length"));
    }
    auto v = store_->GetVolume(VolumeId(req->volume_id()));
    if (!v) return ToGrpc(Status::NotFound("volume " + std::to_string(req->volume_id())));
    for (int i = 0; i < req->keys_size(); ++i) {
      Status s = v->ReadRecordAt(NeedleKey(req->keys(i)), req->offset_units(i),
                                 req->compaction_revision(), resp->add_records());
      if (!s.ok()) return ToGrpc(s);
    }
    return grpc::Status::OK;
  }

  grpc::Status SyncVolume(grpc::ServerContext*, const pb::SyncVolumeRequest* req,
                          pb::SyncVolumeResponse* resp) override {
    if (Status s = CheckCluster(req->cluster_id()); !s.ok()) return ToGrpc(s);
    if (!anti_entropy_) {
      return ToGrpc(Status::FailedPrecondition("this volume server has no master: no replicas"));
    }
    auto r = anti_entropy_->SyncVolume(VolumeId(req->volume_id()));
    if (!r.ok()) return ToGrpc(r.status());
    resp->set_volumes(r->volumes);
    resp->set_compared(r->compared);
    resp->set_needles(r->needles);
    resp->set_tombstones(r->tombstones);
    resp->set_bytes(r->bytes);
    resp->set_changed_meanwhile(r->changed_meanwhile);
    resp->set_errors(r->errors);
    return grpc::Status::OK;
  }

 private:
  /// Refuses a caller of another cluster (objstore/cluster_id.h).
  Status CheckCluster(uint64_t theirs) const {
    const uint64_t ours = cluster_id_ ? cluster_id_->load() : 0;
    if (SameCluster(ours, theirs)) return Status::OK();
    return Status::FailedPrecondition("request of cluster " + std::to_string(theirs) +
                                      " at a server of cluster " + std::to_string(ours));
  }

  Store* store_;
  AntiEntropy* anti_entropy_;  // null without a master
  const ClusterIdCell cluster_id_;
  VolumeCopier copier_;
};

}  // namespace

StatusOr<std::unique_ptr<VolumeGrpcServer>> VolumeGrpcServer::Start(Store* store,
                                                                    AntiEntropy* anti_entropy,
                                                                    ClusterIdCell cluster_id,
                                                                    const std::string& ip,
                                                                    uint16_t port) {
  auto service = std::make_unique<Service>(store, anti_entropy, std::move(cluster_id));
  NEEDLEFS_ASSIGN_OR_RETURN(auto server, GrpcServer::Start({service.get()}, ip, port));
  return std::unique_ptr<VolumeGrpcServer>(
      new GrpcServiceHost<VolumeGrpcServer, Service>(std::move(service), std::move(server)));
}

}  // namespace needlefs
