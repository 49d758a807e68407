// gRPC glue of MasterClient (proto/master.proto: Assign, LookupVolume).
#include "client/master_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "common/grpc_server.h"
#include "common/http.h"
#include "master.grpc.pb.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::master;

class GrpcMasterClient final : public MasterClient {
 public:
  GrpcMasterClient(std::shared_ptr<grpc::Channel> channel, int timeout_ms)
      : stub_(pb::Master::NewStub(channel)), timeout_ms_(timeout_ms) {}

  StatusOr<MasterAssignResult> Assign(const MasterAssignRequest& in) override {
    pb::AssignRequest req;
    req.set_count(in.count);
    req.set_replication(in.replication);
    req.set_collection(in.collection);
    req.set_ttl(in.ttl);
    req.set_data_center(in.data_center);
    req.set_rack(in.rack);
    pb::AssignResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->Assign(&ctx, req, &resp), "Assign"));
    return MasterAssignResult{resp.fid(), resp.url(), resp.public_url(), resp.count()};
  }

  StatusOr<std::vector<MasterLocation>> Lookup(VolumeId id) override {
    pb::LookupVolumeRequest req;
    req.set_volume_id(id.value);
    pb::LookupVolumeResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    NEEDLEFS_RETURN_IF_ERROR(FromGrpc(stub_->LookupVolume(&ctx, req, &resp), "LookupVolume"));
    std::vector<MasterLocation> out;
    for (const auto& l : resp.locations()) {
      std::string host;
      uint16_t port = 0;
      if (!SplitHostPort(l.url(), &host, &port).ok()) host = l.url();
      out.push_back({l.url(), l.public_url(),
                     JoinHostPort(host, static_cast<uint16_t>(l.grpc_port())), l.data_center(),
                     l.rack()});
    }
    return out;
  }

 private:
  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
  }
  std::unique_ptr<pb::Master::Stub> stub_;
  int timeout_ms_;
};

}  // namespace

StatusOr<std::unique_ptr<MasterClient>> MasterClient::Create(const std::string& hostport,
                                                             int timeout_ms) {
  std::string host;
  uint16_t port;
  NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(hostport, &host, &port));
  auto channel = grpc::CreateChannel(JoinHostPort(host, port), grpc::InsecureChannelCredentials());
  return std::unique_ptr<MasterClient>(new GrpcMasterClient(channel, timeout_ms));
}

}  // namespace needlefs
