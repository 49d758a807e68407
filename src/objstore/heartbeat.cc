// gRPC transport of the volume server's heartbeat to the master.
#include "objstore/heartbeat.h"

#include <grpcpp/grpcpp.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
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
    const std::vector<VolumeId> repair = NeedingRepair();
    for (const auto& st : store_->Stats()) {
      auto* v = hb.add_volumes();
      v->set_needs_repair(std::find(repair.begin(), repair.end(), st.id) != repair.end());
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

  /// Which volumes exist, which are read-only and which need repair: a
  /// change of these is reported at once, the rest (sizes, counts) with the
  /// next pulse.
  std::vector<VolumeId> NeedingRepair() const {
    return options_.needing_repair ? options_.needing_repair() : std::vector<VolumeId>{};
  }

  std::string Shape() const {
    std::string s;
    for (VolumeId id : NeedingRepair()) s += "repair " + std::to_string(id.value) + ",";
    for (const auto& st : store_->Stats()) {
      s += std::to_string(st.id.value) + (st.read_only ? "r," : "w,");
    }
    return s;
  }

  /// Turns the full heartbeat `hb` into a delta against `sent` (volume id
  /// -> the serialized report last sent): only changed volumes stay, and
  /// the ids of vanished ones are listed.
  static void MakeDelta(pb::Heartbeat* hb, const std::map<uint32_t, std::string>& sent,
                        const std::map<uint32_t, std::string>& now) {
    pb::Heartbeat full = *hb;
    hb->clear_volumes();
    hb->set_delta(true);
    for (const auto& v : full.volumes()) {
      auto it = sent.find(v.id());
      if (it == sent.end() || it->second != now.at(v.id())) *hb->add_volumes() = v;
    }
    for (const auto& [id, report] : sent) {
      if (!now.count(id)) hb->add_deleted_volume_ids(id);
    }
  }

  /// Waits up to `ms`, returning early when the volume shape changes from
  /// `shape`; returns false when stopping.
  bool WaitForPulse(int ms, const std::string& shape) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (!Sleep(std::min(ms, 250))) return false;
      if (Shape() != shape) return true;
    }
    return true;
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
      // The full state on connect (and when the master asks), then deltas.
      std::map<uint32_t, std::string> sent;
      bool full = true;
      bool ok = true;
      while (ok) {
        const std::string shape = Shape();
        pb::Heartbeat hb = Snapshot();
        std::map<uint32_t, std::string> now;
        for (const auto& v : hb.volumes()) now[v.id()] = v.SerializeAsString();
        if (!full) MakeDelta(&hb, sent, now);
        sent = std::move(now);
        ok = stream->Write(hb);
        pb::HeartbeatResponse resp;
        if (ok) ok = stream->Read(&resp);
        full = ok && resp.send_full_state();
        if (ok && resp.cluster_id() && options_.on_cluster_id) {
          options_.on_cluster_id(resp.cluster_id());
        }
        if (ok && !connected_logged) {
          spdlog::info("volume.heartbeat connected master={}", options_.master);
          connected_logged = true;
        }
        if (ok && !WaitForPulse(options_.pulse_ms, shape)) {
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
