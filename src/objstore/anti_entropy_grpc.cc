// Anti-entropy transport: ReplicaPeer over a volume server's gRPC admin
// service (VolumeDigest, ReadRecords) and the master lookup that finds the
// other replicas. The digest wire format (28-byte packed entries) is encoded
// here and in volume_grpc_service.cc through EncodeDigestEntries /
// DecodeDigestEntries.
#include <grpcpp/grpcpp.h>

#include "common/endian.h"
#include "common/grpc_server.h"
#include "common/http.h"
#include "objstore/anti_entropy.h"
#include "objstore/internal/anti_entropy_wire.h"
#include "volume_rpc/volume_locator.h"
#include "volume_server.grpc.pb.h"

namespace needlefs {

void EncodeDigestEntries(const DigestEntry* entries, size_t n, std::string* out) {
  out->resize(n * kDigestEntryWireSize);
  char* p = out->data();
  for (size_t i = 0; i < n; ++i, p += kDigestEntryWireSize) {
    EncodeFixed64(p, entries[i].key.value);
    EncodeFixed32(p + 8, entries[i].offset_units);
    EncodeFixed32(p + 12, entries[i].size);
    EncodeFixed32(p + 16, entries[i].data_crc);
    EncodeFixed64(p + 20, entries[i].append_at_ns);
  }
}

Status DecodeDigestEntries(std::string_view in, std::vector<DigestEntry>* out) {
  if (in.size() % kDigestEntryWireSize != 0) {
    return Status::Corruption("digest chunk of " + std::to_string(in.size()) +
                              " bytes is not a whole number of entries");
  }
  for (size_t at = 0; at < in.size(); at += kDigestEntryWireSize) {
    const char* p = in.data() + at;
    DigestEntry d;
    d.key = NeedleKey(DecodeFixed64(p));
    d.offset_units = DecodeFixed32(p + 8);
    d.size = DecodeFixed32(p + 12);
    d.data_crc = DecodeFixed32(p + 16);
    d.append_at_ns = DecodeFixed64(p + 20);
    if (!out->empty() && !(out->back().key < d.key)) {
      return Status::Corruption("digest entries are not sorted by key");
    }
    out->push_back(d);
  }
  return Status::OK();
}

namespace {

namespace pb = ::needlefs::volume;

class GrpcReplicaPeer final : public ReplicaPeer {
 public:
  GrpcReplicaPeer(std::string grpc_addr, ClusterIdCell cluster_id)
      : name_(std::move(grpc_addr)), cluster_id_(std::move(cluster_id)) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // one record may be as large as a blob
    stub_ = pb::VolumeServer::NewStub(
        grpc::CreateCustomChannel(name_, grpc::InsecureChannelCredentials(), args));
  }
  const std::string& name() const override { return name_; }

  Status Digest(VolumeId id, VolumeDigest* out) override {
    pb::VolumeDigestRequest req;
    req.set_volume_id(id.value);
    req.set_cluster_id(Cluster());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    auto reader = stub_->VolumeDigest(&ctx, req);
    pb::VolumeDigestChunk chunk;
    out->entries.clear();
    Status decoded;
    while (reader->Read(&chunk)) {
      out->compaction_revision = static_cast<uint16_t>(chunk.compaction_revision());
      out->log_entries = chunk.log_entries();
      if (decoded.ok()) decoded = DecodeDigestEntries(chunk.entries(), &out->entries);
    }
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(reader->Finish(), "VolumeDigest"));
    return decoded;
  }

  Status ReadRecords(VolumeId id, int revision, const std::vector<DigestEntry>& which,
                     std::vector<std::string>* out) override {
    pb::ReadRecordsRequest req;
    req.set_volume_id(id.value);
    req.set_cluster_id(Cluster());
    req.set_compaction_revision(revision);
    for (const auto& e : which) {
      req.add_keys(e.key.value);
      req.add_offset_units(e.offset_units);
    }
    pb::ReadRecordsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->ReadRecords(&ctx, req, &resp), "ReadRecords"));
    out->assign(resp.records().begin(), resp.records().end());
    return Status::OK();
  }

  Status RequestPull(VolumeId id) override {
    pb::SyncVolumeRequest req;
    req.set_volume_id(id.value);
    req.set_cluster_id(Cluster());
    pb::SyncVolumeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->SyncVolume(&ctx, req, &resp), "SyncVolume"));
    if (resp.errors()) {
      return Status::Unavailable(name_ + " pulled with " + std::to_string(resp.errors()) +
                                 " errors");
    }
    return Status::OK();
  }

 private:
  uint64_t Cluster() const { return cluster_id_ ? cluster_id_->load() : 0; }
  const std::string name_;
  const ClusterIdCell cluster_id_;
  std::unique_ptr<pb::VolumeServer::Stub> stub_;
};

}  // namespace

ReplicaFinder MasterReplicaFinder(const std::string& master, const std::string& self,
                                  ClusterIdCell cluster_id) {
  struct Lookup {
    HttpClientPool pool{30'000, 2};
    VolumeLocator locator;
    explicit Lookup(const std::string& m) : locator(m, &pool, 0) {}
  };
  auto lookup = std::make_shared<Lookup>(master);
  return [lookup, self,
          cluster_id](VolumeId id) -> StatusOr<std::vector<std::unique_ptr<ReplicaPeer>>> {
    NEEDLEFS_ASSIGN_OR_RETURN(auto replicas,
                              lookup->locator.LookupReplicas(std::to_string(id.value), true));
    std::vector<std::unique_ptr<ReplicaPeer>> peers;
    for (const auto& r : replicas) {
      if (r.url != self && !r.grpc.empty())
        peers.push_back(std::make_unique<GrpcReplicaPeer>(r.grpc, cluster_id));
    }
    return peers;
  };
}

}  // namespace needlefs
