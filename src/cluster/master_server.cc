// HTTP handlers of the master (transport over Topology + MasterState) and
// its background dead-node sweep.
#include "cluster/master_server.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cluster/master_grpc_service.h"
#include "cluster/master_state.h"
#include "cluster/replica_ops.h"
#include "cluster/status_page.h"
#include "cluster/topology.h"
#include "common/file_id.h"
#include "common/http.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "objstore/needle.h"
#include "volume_rpc/volume_admin_client.h"

namespace needlefs {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The one Status -> HTTP status mapping of the master.
int ToHttpStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

/// The master's own metrics (gauges refreshed every second by the sweeper).
struct MasterMetrics {
  prometheus::Counter* assigns_ok = &Counter("ok");
  prometheus::Counter* assigns_failed = &Counter("error");
  prometheus::Counter* dead_nodes = &Metrics::Global().Counter(
      "needlefs_master_dead_nodes_total", "Volume servers dropped for missing heartbeats");
  prometheus::Counter* volumes_grown = &Metrics::Global().Counter(
      "needlefs_master_volumes_grown_total", "Volumes allocated by growth");
  prometheus::Gauge* nodes = &Metrics::Global().Gauge("needlefs_master_volume_servers",
                                                      "Volume servers sending heartbeats");
  prometheus::Gauge* volumes =
      &Metrics::Global().Gauge("needlefs_master_volumes", "Volumes with at least one replica");
  prometheus::Gauge* under_replicated = &Metrics::Global().Gauge(
      "needlefs_master_under_replicated_volumes", "Volumes with fewer replicas than their code");

  static prometheus::Counter& Counter(const char* result) {
    return Metrics::Global().Counter("needlefs_master_assign_requests_total",
                                     "File-id assignments (HTTP and gRPC) by result",
                                     {{"result", result}});
  }
  void Refresh(const Topology& t) {
    nodes->Set(static_cast<double>(t.NodeCount()));
    volumes->Set(static_cast<double>(t.VolumeCount()));
    under_replicated->Set(static_cast<double>(t.UnderReplicated().size()));
  }
};

struct MasterServer::Impl final : public MasterOps {
  MasterMetrics metrics;
  MasterOptions options;
  std::unique_ptr<Topology> topology;
  std::unique_ptr<MasterState> state;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<MasterGrpcServer> grpc;
  std::mutex grow_mu;  // one volume growth at a time
  std::mutex sweep_mu;
  std::condition_variable sweep_cv;
  bool stopping = false;  // GUARDED_BY(sweep_mu)
  std::thread sweeper;
  std::unique_ptr<ReplicaOps> replicas;
  std::thread repairer;
  std::map<VolumeId, int64_t> under_since;  // repairer thread only

  HttpResponse FixReplication(HttpRequest& req);
  HttpResponse Balance();
  HttpResponse MoveReplica(HttpRequest& req);
  /// One pass of the automatic repair: volumes under-replicated for longer
  /// than the grace period get their replicas back.
  void RepairPass();

  HttpResponse Handle(HttpRequest& req);
  StatusOr<AssignResult> Assign(const AssignRequest& req) override;
  StatusOr<AssignResult> DoAssign(const AssignRequest& req);
  StatusOr<std::vector<VolumeLocation>> Lookup(VolumeId id) override;
  uint64_t ClusterId() const override { return state->cluster_id(); }
  HttpResponse AssignHttp(HttpRequest& req);
  HttpResponse LookupHttp(HttpRequest& req);
  HttpResponse ClusterStatus();
  HttpResponse VolumeStatus();
  HttpResponse GrowRequest(HttpRequest& req);
  HttpResponse StatusPage();
  /// Allocates one new volume of `layout` on nodes chosen by placement.
  Status Grow(const LayoutKey& layout, const ReplicaPlacement& rp, const std::string& dc,
              const std::string& rack);
};

Status MasterServer::Impl::Grow(const LayoutKey& layout, const ReplicaPlacement& rp,
                                const std::string& dc, const std::string& rack) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto nodes, topology->PlaceVolume(rp, dc, rack));
  NEEDLEFS_ASSIGN_OR_RETURN(VolumeId vid, state->NextVolumeId(topology->MaxVolumeId()));
  for (const auto& node_id : nodes) {
    auto info = topology->GetNode(node_id);
    if (!info) return Status::Unavailable("volume server " + node_id + " left");
    std::string host = node_id.substr(0, node_id.rfind(':'));
    auto client = VolumeAdminClient::Create(host + ":" + std::to_string(info->grpc_port));
    if (!client.ok()) return client.status();
    Status s =
        (*client)->AllocateVolume(vid, layout.collection, rp.ToString(), Ttl::ToString(layout.ttl));
    if (!s.ok())
      return s.WithContext("allocate volume " + std::to_string(vid.value) + " on " + node_id);
  }
  VolumeReport v;
  v.id = vid;
  v.collection = layout.collection;
  v.replica_placement = rp;
  v.ttl = layout.ttl;
  topology->AddVolume(v, nodes);
  metrics.volumes_grown->Increment();
  spdlog::info("master.grow volume={} replication={} collection={} nodes={}", vid.value,
               rp.ToString(), layout.collection, nodes.size());
  return Status::OK();
}

StatusOr<AssignResult> MasterServer::Impl::Assign(const AssignRequest& req) {
  auto r = DoAssign(req);
  (r.ok() ? metrics.assigns_ok : metrics.assigns_failed)->Increment();
  return r;
}

StatusOr<AssignResult> MasterServer::Impl::DoAssign(const AssignRequest& req) {
  if (req.count == 0 || req.count > 999999)
    return Status::InvalidArgument("count must be 1..999999");
  NEEDLEFS_ASSIGN_OR_RETURN(
      ReplicaPlacement rp,
      ReplicaPlacement::Parse(req.replication.empty() ? options.default_replication
                                                      : req.replication));
  NEEDLEFS_ASSIGN_OR_RETURN(uint16_t ttl, Ttl::Parse(req.ttl));
  const LayoutKey layout{req.collection, rp.ToByte(), ttl};
  auto pick = [&] { return topology->PickWritable(layout, req.data_center, req.rack); };
  auto vid = pick();
  if (!vid) {
    std::lock_guard<std::mutex> g(grow_mu);
    vid = pick();  // another request may have grown it
    if (!vid) {
      NEEDLEFS_RETURN_IF_ERROR(Grow(layout, rp, req.data_center, req.rack));
      vid = pick();
    }
  }
  if (!vid) return Status::Unavailable("no writable volume after growth");
  auto locations = topology->Lookup(*vid);
  if (locations.empty()) return Status::Unavailable("volume has no location");
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t key, state->NextFileKeys(req.count, topology->MaxFileKey()));
  static thread_local std::mt19937 rng(std::random_device{}());
  // Prefer handing out a holder in the asked data center and rack.
  size_t at = 0;
  for (size_t i = 0; i < locations.size(); ++i) {
    if ((req.data_center.empty() || locations[i].data_center == req.data_center) &&
        (req.rack.empty() || locations[i].rack == req.rack)) {
      at = i;
      break;
    }
  }
  AssignResult r;
  r.fid = FileId{*vid, NeedleKey(key), Cookie(static_cast<uint32_t>(rng()))}.ToString();
  r.url = locations[at].node_id;
  r.public_url = locations[at].public_url;
  r.count = req.count;
  return r;
}

StatusOr<std::vector<VolumeLocation>> MasterServer::Impl::Lookup(VolumeId id) {
  auto locations = topology->Lookup(id);
  if (locations.empty()) {
    return Status::NotFound("volume id " + std::to_string(id.value) + " not found");
  }
  return locations;
}

HttpResponse MasterServer::Impl::AssignHttp(HttpRequest& req) {
  AssignRequest a;
  if (std::string c = req.QueryParam("count"); !c.empty()) {
    if (c.size() > 6 || c.find_first_not_of("0123456789") != std::string::npos || c == "0") {
      return HttpResponse::Error(400, "count must be 1..999999");
    }
    a.count = std::stoull(c);
  }
  a.replication = req.QueryParam("replication");
  a.collection = req.QueryParam("collection");
  a.ttl = req.QueryParam("ttl");
  a.data_center = req.QueryParam("dataCenter");
  a.rack = req.QueryParam("rack");
  auto r = Assign(a);
  if (!r.ok()) {
    const Status& s = r.status();
    return HttpResponse::Error(ToHttpStatus(s), s.message());
  }
  nlohmann::json j{
      {"fid", r->fid}, {"url", r->url}, {"publicUrl", r->public_url}, {"count", r->count}};
  return HttpResponse::Json(200, j.dump());
}

HttpResponse MasterServer::Impl::LookupHttp(HttpRequest& req) {
  std::string v = req.QueryParam("volumeId");
  if (v.empty()) {
    std::string f = req.QueryParam("fileId");
    v = f.substr(0, f.find_first_of(",/"));
  }
  if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos) {
    return HttpResponse::Error(400, "volumeId (or fileId) is missing or malformed");
  }
  auto locations = topology->Lookup(VolumeId(static_cast<uint32_t>(std::stoull(v))));
  if (locations.empty()) {
    return HttpResponse::Json(
        404, nlohmann::json{{"volumeId", v}, {"error", "volume id " + v + " not found"}}.dump());
  }
  nlohmann::json locs = nlohmann::json::array();
  for (const auto& l : locations) {
    std::string host;
    uint16_t http_port = 0;
    if (!SplitHostPort(l.node_id, &host, &http_port).ok()) host = l.node_id;
    locs.push_back({{"url", l.node_id},
                    {"publicUrl", l.public_url},
                    {"grpcUrl", JoinHostPort(host, l.grpc_port)},
                    {"dataCenter", l.data_center},
                    {"rack", l.rack}});
  }
  return HttpResponse::Json(200, nlohmann::json{{"volumeId", v}, {"locations", locs}}.dump());
}

HttpResponse MasterServer::Impl::ClusterStatus() {
  nlohmann::json dcs = nlohmann::json::object();
  for (const auto& [dc, racks] : topology->Tree()) {
    for (const auto& [rack, nodes] : racks) {
      for (const auto& n : nodes) {
        dcs[dc][rack].push_back({{"node", n}, {"freeSlots", topology->FreeSlots(n)}});
      }
    }
  }
  nlohmann::json under = nlohmann::json::array();
  for (const auto& [vid, holders] : topology->UnderReplicated()) {
    under.push_back({{"volumeId", vid.value}, {"holders", holders}});
  }
  // Volumes a holder reported after a failed replicated write; anti-entropy
  // is repairing them.
  std::map<uint32_t, std::vector<std::string>> repair;
  for (const auto& n : topology->Snapshot()) {
    for (const auto& v : n.volumes) {
      if (v.needs_repair) repair[v.id.value].push_back(n.info.id);
    }
  }
  nlohmann::json needs_repair = nlohmann::json::array();
  for (const auto& [vid, reporters] : repair) {
    needs_repair.push_back({{"volumeId", vid}, {"reportedBy", reporters}});
  }
  nlohmann::json j{{"IsLeader", true},
                   {"Leader", options.ip + ":" + std::to_string(http->port())},
                   {"MaxVolumeId", state->max_volume_id().value},
                   {"Topology", dcs},
                   {"UnderReplicated", under},
                   {"NeedsRepair", needs_repair}};
  return HttpResponse::Json(200, j.dump(2));
}

HttpResponse MasterServer::Impl::VolumeStatus() {
  nlohmann::json nodes = nlohmann::json::array();
  const int64_t now = NowMs();
  for (const auto& n : topology->Snapshot()) {
    nlohmann::json vols = nlohmann::json::array();
    for (const auto& v : n.volumes) {
      vols.push_back({{"id", v.id.value},
                      {"collection", v.collection},
                      {"replication", v.replica_placement.ToString()},
                      {"ttl", Ttl::ToString(v.ttl)},
                      {"size", v.size_bytes},
                      {"fileCount", v.file_count},
                      {"garbageBytes", v.garbage_bytes},
                      {"readOnly", v.read_only}});
    }
    nodes.push_back({{"url", n.info.id},
                     {"publicUrl", n.info.public_url},
                     {"grpcPort", n.info.grpc_port},
                     {"dataCenter", n.info.data_center},
                     {"rack", n.info.rack},
                     {"maxVolumes", n.info.max_volumes},
                     {"diskFreeBytes", n.info.disk_free_bytes},
                     {"diskTotalBytes", n.info.disk_total_bytes},
                     {"lastHeartbeatMsAgo", std::max<int64_t>(0, now - n.last_seen_ms)},
                     {"volumes", vols}});
  }
  return HttpResponse::Json(200, nlohmann::json{{"Nodes", nodes}}.dump(2));
}

HttpResponse MasterServer::Impl::GrowRequest(HttpRequest& req) {
  std::string c = req.QueryParam("count", "1");
  if (c.empty() || c.size() > 3 || c.find_first_not_of("0123456789") != std::string::npos ||
      c == "0") {
    return HttpResponse::Error(400, "count must be 1..999");
  }
  auto rp = ReplicaPlacement::Parse(req.QueryParam("replication", options.default_replication));
  if (!rp.ok()) return HttpResponse::Error(400, rp.status().message());
  auto ttl = Ttl::Parse(req.QueryParam("ttl"));
  if (!ttl.ok()) return HttpResponse::Error(400, ttl.status().message());
  LayoutKey layout{req.QueryParam("collection"), rp->ToByte(), *ttl};
  std::lock_guard<std::mutex> g(grow_mu);
  int grown = 0;
  for (int i = 0; i < std::stoi(c); ++i) {
    Status s = Grow(layout, *rp, req.QueryParam("dataCenter"), req.QueryParam("rack"));
    if (!s.ok()) {
      return HttpResponse::Json(ToHttpStatus(s),
                                nlohmann::json{{"count", grown}, {"error", s.message()}}.dump());
    }
    ++grown;
  }
  return HttpResponse::Json(200, nlohmann::json{{"count", grown}}.dump());
}

HttpResponse MasterServer::Impl::StatusPage() {
  StatusPageInfo info;
  info.leader = options.ip + ":" + std::to_string(http->port());
  info.max_volume_id = state->max_volume_id().value;
  info.default_replication = options.default_replication;
  info.volume_size_limit_bytes = options.volume_size_limit_bytes;
  info.now_ms = NowMs();
  HttpResponse r;
  r.body = RenderStatusPage(topology->Snapshot(), topology->UnderReplicated(), info);
  r.headers["Content-Type"] = "text/html; charset=utf-8";
  return r;
}

namespace {

nlohmann::json CopyJson(const ReplicaCopy& c) {
  return {{"volumeId", c.volume.value},
          {"source", c.source},
          {"target", c.target},
          {"removed", c.removed},
          {"bytes", c.bytes}};
}

/// The volumeId query parameter. Errors: kInvalidArgument.
StatusOr<VolumeId> VolumeIdParam(HttpRequest& req) {
  const std::string v = req.QueryParam("volumeId");
  if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("volumeId must be a volume number");
  }
  return VolumeId(static_cast<uint32_t>(std::stoull(v)));
}

}  // namespace

HttpResponse MasterServer::Impl::FixReplication(HttpRequest& req) {
  if (req.method == "POST") {
    auto id = VolumeIdParam(req);
    if (!id.ok()) return HttpResponse::Error(400, id.status().message());
    auto done = replicas->Repair(*id);
    if (!done.ok())
      return HttpResponse::Error(ToHttpStatus(done.status()), done.status().message());
    nlohmann::json copies = nlohmann::json::array();
    for (const auto& c : *done) copies.push_back(CopyJson(c));
    return HttpResponse::Json(200,
                              nlohmann::json{{"volumeId", id->value}, {"copies", copies}}.dump());
  }
  nlohmann::json vols = nlohmann::json::array();
  for (const auto& [vid, holders] : topology->UnderReplicated()) {
    auto v = topology->GetVolume(vid);
    nlohmann::json j{{"volumeId", vid.value},
                     {"replication", v ? v->replica_placement.ToString() : ""},
                     {"replicas", holders.size()},
                     {"copies", v ? v->replica_placement.CopyCount() : 0},
                     {"holders", holders}};
    auto target = topology->PlaceReplica(vid);
    if (target.ok()) {
      j["target"] = *target;
    } else {
      j["error"] = target.status().message();
    }
    vols.push_back(std::move(j));
  }
  return HttpResponse::Json(200, nlohmann::json{{"volumes", vols}}.dump());
}

HttpResponse MasterServer::Impl::Balance() {
  nlohmann::json moves = nlohmann::json::array();
  for (const auto& m : topology->PlanBalance()) {
    moves.push_back({{"volumeId", m.volume.value}, {"from", m.from}, {"to", m.to}});
  }
  return HttpResponse::Json(200, nlohmann::json{{"moves", moves}}.dump());
}

HttpResponse MasterServer::Impl::MoveReplica(HttpRequest& req) {
  if (req.method != "POST") return HttpResponse::Error(405, "POST /vol/move?volumeId=&from=&to=");
  auto id = VolumeIdParam(req);
  if (!id.ok()) return HttpResponse::Error(400, id.status().message());
  const std::string from = req.QueryParam("from"), to = req.QueryParam("to");
  if (from.empty() || to.empty()) return HttpResponse::Error(400, "from and to are required");
  auto c = replicas->Move(*id, from, to);
  if (!c.ok()) return HttpResponse::Error(ToHttpStatus(c.status()), c.status().message());
  return HttpResponse::Json(200, CopyJson(*c).dump());
}

void MasterServer::Impl::RepairPass() {
  const int64_t now = NowMs();
  auto under = topology->UnderReplicated();
  for (auto it = under_since.begin(); it != under_since.end();) {
    it = under.count(it->first) ? std::next(it) : under_since.erase(it);
  }
  for (const auto& [vid, holders] : under) {
    auto [it, fresh] = under_since.emplace(vid, now);
    if (fresh) {
      spdlog::warn("master.under_replicated volume={} replicas={} (repair in {} ms)", vid.value,
                   holders.size(), options.replication_grace_ms);
    }
    if (now - it->second < options.replication_grace_ms) continue;
    {
      std::lock_guard<std::mutex> l(sweep_mu);
      if (stopping) return;
    }
    auto done = replicas->Repair(vid);
    if (done.ok()) {
      under_since.erase(it);
    } else {
      it->second = now;  // try again after another grace period
      spdlog::error("master.repair volume={} failed: {}", vid.value, done.status().ToString());
    }
  }
}

HttpResponse MasterServer::Impl::Handle(HttpRequest& req) {
  if (req.path == "/dir/assign") return AssignHttp(req);
  if (req.path == "/dir/lookup") return LookupHttp(req);
  if (req.path == "/vol/status") return VolumeStatus();
  if (req.path == "/vol/grow") return GrowRequest(req);
  if (req.path == "/vol/fix_replication") return FixReplication(req);
  if (req.path == "/vol/balance") return Balance();
  if (req.path == "/vol/move") return MoveReplica(req);
  if (req.path == "/" || req.path == "/ui/index.html") return StatusPage();
  if (req.path == "/cluster/status" || req.path == "/dir/status" || req.path == "/status") {
    return ClusterStatus();
  }
  if (req.path == "/metrics") return Metrics::Global().HttpExposition();
  return HttpResponse::Error(404, "unknown path " + req.path);
}

MasterServer::MasterServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MasterServer::~MasterServer() { Stop(); }

StatusOr<std::unique_ptr<MasterServer>> MasterServer::Start(const MasterOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("master -mdir is required");
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::IOError("create " + options.dir, ec.value());
  NEEDLEFS_RETURN_IF_ERROR(ReplicaPlacement::Parse(options.default_replication).status());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->topology = std::make_unique<Topology>(options.volume_size_limit_bytes);
  NEEDLEFS_ASSIGN_OR_RETURN(impl->state,
                            MasterState::Open(NewFileStateStorage(options.dir + "/master.json")));
  HttpServerOptions http;
  http.listen_address = options.ip;
  http.port = options.port;
  http.server_name = "needlefs-master";
  Impl* raw = impl.get();
  NEEDLEFS_ASSIGN_OR_RETURN(
      impl->http, HttpServer::Start(http, [raw](HttpRequest& r) { return raw->Handle(r); }));
  NEEDLEFS_ASSIGN_OR_RETURN(impl->grpc, MasterGrpcServer::Start(impl->topology.get(), raw,
                                                                options.volume_size_limit_bytes,
                                                                options.ip, options.grpc_port));
  impl->replicas = std::make_unique<ReplicaOps>(impl->topology.get());
  if (options.replication_grace_ms >= 0) {
    impl->repairer = std::thread([raw] {
      std::unique_lock<std::mutex> l(raw->sweep_mu);
      while (!raw->sweep_cv.wait_for(l, std::chrono::seconds(2), [raw] { return raw->stopping; })) {
        l.unlock();
        raw->RepairPass();
        l.lock();
      }
    });
  }
  impl->sweeper = std::thread([raw] {
    std::unique_lock<std::mutex> l(raw->sweep_mu);
    while (!raw->sweep_cv.wait_for(l, std::chrono::seconds(1), [raw] { return raw->stopping; })) {
      for (const auto& n :
           raw->topology->RemoveDeadNodes(NowMs(), raw->options.dead_node_timeout_ms)) {
        spdlog::warn("master.node_dead node={} (no heartbeat for {} ms)", n,
                     raw->options.dead_node_timeout_ms);
        raw->metrics.dead_nodes->Increment();
      }
      raw->metrics.Refresh(*raw->topology);
    }
  });
  spdlog::info("master.start http={}:{} grpc={}:{} dir={}", options.ip, impl->http->port(),
               options.ip, impl->grpc->port(), options.dir);
  return std::unique_ptr<MasterServer>(new MasterServer(std::move(impl)));
}

uint16_t MasterServer::http_port() const { return impl_->http->port(); }
uint16_t MasterServer::grpc_port() const { return impl_->grpc->port(); }
size_t MasterServer::node_count() const { return impl_->topology->NodeCount(); }

void MasterServer::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> l(impl_->sweep_mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->sweep_cv.notify_all();
  if (impl_->sweeper.joinable()) impl_->sweeper.join();
  if (impl_->repairer.joinable()) impl_->repairer.join();
  impl_->http->Stop();
  impl_->grpc->Shutdown();
}

}  // namespace needlefs
