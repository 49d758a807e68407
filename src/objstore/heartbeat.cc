// gRPC transport of the volume server's heartbeat to the master.
#include "objstore/heartbeat.h"

#include <grpcpp/grpcpp.h>
#include <sys/statvfs.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/logging.h"
#include "master.grpc.pb.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::master;

class GrpcHeartbeater final : public Heartbeater {
 public:
  GrpcHeartbeater(HeartbeatOptions options, Store* store)
      : options_(std::move(options)), store_(store) {
    thread_ = std::thread([this] { Run(); });
  }
  ~GrpcHeartbeater() override { Stop(); }

  void Stop() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      stop_ = true;
      if (ctx_) ctx_->TryCancel();
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  pb::Heartbeat Snapshot() const {
    pb::Heartbeat hb;
    hb.set_ip(options_.ip);
    hb.set_port(options_.http_port);
    hb.set_public_url(options_.public_url);
    hb.set_grpc_port(options_.grpc_port);
    hb.set_data_center(options_.data_center);
    hb.set_rack(options_.rack);
    hb.set_max_volumes(static_cast<uint32_t>(store_->options().max_volumes));
    struct statvfs fs {};
    if (statvfs(store_->options().dir.c_str(), &fs) == 0) {
      hb.set_disk_free_bytes(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize);
      hb.set_disk_total_bytes(static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize);
    }
    for (const auto& st : store_->Stats()) {
      auto* v = hb.add_volumes();
      v->set_id(st.id.value);
      v->set_collection(st.collection);
      v->set_replica_placement(st.replica_placement.ToByte());
      v->set_ttl(st.ttl);
      v->set_size(st.data_bytes);
      v->set_read_only(st.read_only);
      v->set_file_count(st.needle_count);
      v->set_garbage_bytes(st.garbage_bytes);
      v->set_max_file_key(st.max_key);
    }
    return hb;
  }

  /// Waits `ms` or until Stop; returns false when stopping.
  bool Sleep(int ms) {
    std::unique_lock<std::mutex> l(mu_);
    return !cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stop_; });
  }

  void Run() {
    auto channel = grpc::CreateChannel(options_.master, grpc::InsecureChannelCredentials());
    auto stub = pb::Master::NewStub(channel);
    bool connected_logged = false;
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) return;
        ctx_ = std::make_unique<grpc::ClientContext>();
      }
      auto stream = stub->SendHeartbeat(ctx_.get());
      bool ok = true;
      while (ok) {
        ok = stream->Write(Snapshot());
        pb::HeartbeatResponse resp;
        if (ok) ok = stream->Read(&resp);
        if (ok && !connected_logged) {
          spdlog::info("volume.heartbeat connected master={}", options_.master);
          connected_logged = true;
        }
        if (ok && !Sleep(options_.pulse_ms)) {
          stream->WritesDone();
          stream->Finish();
          return;
        }
      }
      grpc::Status st = stream->Finish();
      if (connected_logged) {
        spdlog::warn("volume.heartbeat lost master={} error=\"{}\"", options_.master,
                     st.error_message());
        connected_logged = false;
      }
      if (!Sleep(1000)) return;
    }
  }

  const HeartbeatOptions options_;
  Store* store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                         // GUARDED_BY(mu_)
  std::unique_ptr<grpc::ClientContext> ctx_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Heartbeater> Heartbeater::Start(const HeartbeatOptions& options, Store* store) {
  return std::make_unique<GrpcHeartbeater>(options, store);
}

}  // namespace needlefs
