#include "nfsd/nfs_server.h"

#include <rpc/pmap_clnt.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>

#include "client/file_system.h"
#include "common/http.h"
#include "common/logging.h"
#include "nfsd/internal/nfs3_service.h"
#include "nfsd/portmap.h"
#include "nfsd/rpc_server.h"

namespace needlefs::nfsd {

namespace {

/// Whether an rpcbind answers on its local socket (libtirpc's pmap_set
/// talks to it there; without one it would wait a minute for a UDP reply).
bool RpcbindRuns() {
  for (const char* path : {"/run/rpcbind.sock", "/var/run/rpcbind.sock"}) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    const bool up = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(fd);
    if (up) return true;
  }
  return false;
}

/// The (program, version) pairs nfsd serves, with their port.
std::vector<std::tuple<uint32_t, uint32_t, uint16_t>> Programs(uint16_t nfs, uint16_t mount) {
  return {{kNfsProgram, kNfsVersion, nfs},
          {kMountProgram, 1, mount},
          {kMountProgram, 2, mount},
          {kMountProgram, kMountVersion, mount}};
}

}  // namespace

class NfsServer::Impl : public FileSystemListener {
 public:
  // FileSystemListener: other clients' changes to names on export paths.
  void InodeChanged(InodeId) override {}
  void EntryChanged(InodeId, const std::string& name, InodeId) override {
    if (Nfs3Service* s = service_ptr_.load()) s->ExportPathMayHaveChanged(name);
  }
  void AllChanged() override {
    if (Nfs3Service* s = service_ptr_.load()) s->ExportPathMayHaveChanged("");
  }

  ~Impl() override {
    if (rpcbind_registered_) {
      for (auto [prog, vers, port] : Programs(nfs_->port(), mount_->port())) {
        (void)port;
        pmap_unset(prog, vers);
      }
    }
    // Listeners first (no new calls), then the service and the layer.
    http_.reset();
    portmap_server_.reset();
    mount_.reset();
    nfs_.reset();
    // The layer (and its change-stream thread, which calls EntryChanged)
    // before the service; no call is running any more.
    service_ptr_ = nullptr;
    fs_.reset();
    service_.reset();
  }

  Status Start(const NfsServerOptions& o) {
    Exports exports = Exports::Default();
    if (!o.exports_file.empty()) {
      auto e = Exports::Load(o.exports_file);
      if (!e.ok()) return e.status();
      exports = std::move(e).value();
    }
    FileSystemOptions fo;
    fo.meta = o.meta;
    fo.master = o.master;
    fo.client_name = "nfsd:" + o.address + ":" + std::to_string(o.port);
    // NFSv3 metadata changes are stable when the reply goes (RFC 1813
    // section 3.3); data follows WRITE's stable_how and COMMIT.
    fo.sync = true;
    // NFS clients cache entries themselves and revalidate them with
    // GETATTR of the directory; once that shows another client's change,
    // LOOKUP must find it, so nfsd answers it from meta, not from a
    // listing that the change stream has not reached yet.
    fo.dir_cache = false;
    fo.file = o.file;
    auto fs = FileSystem::Open(fo, this);
    if (!fs.ok()) return fs.status();
    fs_ = std::move(fs).value();
    auto key = LoadHandleKey(fs_.get());
    if (!key.ok()) return key.status().WithContext("file handle key");
    service_ = std::make_unique<Nfs3Service>(fs_.get(), std::move(exports), std::move(*key));
    service_ptr_ = service_.get();
    RpcHandler h = [svc = service_.get()](std::string_view record, const Peer& peer) {
      return svc->Handle(record, peer);
    };
    RpcServerOptions ro;
    ro.address = o.address;
    ro.threads = o.threads;
    ro.port = o.port;
    auto nfs = RpcServer::Start(ro, h);
    if (!nfs.ok()) return nfs.status().WithContext("NFS port");
    nfs_ = std::move(nfs).value();
    ro.port = o.mount_port;
    ro.threads = 2;
    auto mount = RpcServer::Start(ro, h);
    if (!mount.ok()) return mount.status().WithContext("MOUNT port");
    mount_ = std::move(mount).value();
    if (o.portmap) StartPortmap(o);
    if (!portmap_server_ && o.register_rpcbind && RpcbindRuns()) RegisterWithRpcbind();
    if (o.http_port >= 0) {
      HttpServerOptions ho;
      ho.listen_address = o.address;
      ho.port = static_cast<uint16_t>(o.http_port);
      auto http = HttpServer::Start(ho, [this](HttpRequest& r) { return Serve(r); });
      if (!http.ok()) return http.status().WithContext("HTTP port");
      http_ = std::move(http).value();
    }
    return Status::OK();
  }

  /// GET /metrics and /status.
  HttpResponse Serve(const HttpRequest& r) {
    if (r.method != "GET") return HttpResponse::Error(405, "GET only");
    if (r.path == "/metrics") {
      HttpResponse resp;
      resp.headers["Content-Type"] = "text/plain; version=0.0.4";
      resp.body = service_->MetricsText();
      return resp;
    }
    if (r.path == "/status") {
      nlohmann::json j;
      j["nfs_port"] = nfs_->port();
      j["mount_port"] = mount_->port();
      j["portmap_port"] = portmap_server_ ? portmap_server_->port() : 0;
      j["rpcbind_registered"] = rpcbind_registered_;
      j["write_verifier"] = fs_->write_verifier();
      j["implicit_opens"] = fs_->implicit_opens();
      j["drc_hits"] = service_->drc_hits();
      for (const Export& e : service_->exports().list) {
        j["exports"].push_back({{"path", e.path},
                                {"clients", e.client_specs},
                                {"access", e.read_only ? "ro" : "rw"},
                                {"squash", e.squash == Squash::kRootSquash     ? "root_squash"
                                           : e.squash == Squash::kNoRootSquash ? "no_root_squash"
                                                                               : "all_squash"}});
      }
      for (uint32_t p = 0; p < 22; ++p) {
        j["calls"][NfsProcName(p)] = service_->counters().calls[p].load();
      }
      return HttpResponse::Json(200, j.dump(2));
    }
    return HttpResponse::Error(404, "try /metrics or /status");
  }

  /// pmap_set (libtirpc, through rpcbind's local socket) of every program
  /// on TCP and UDP. A failure is logged: clients can still give ports.
  void RegisterWithRpcbind() {
    bool all = true;
    for (auto [prog, vers, port] : Programs(nfs_->port(), mount_->port())) {
      pmap_unset(prog, vers);  // a stale registration of an nfsd that died
      for (int proto : {IPPROTO_TCP, IPPROTO_UDP}) {
        all = pmap_set(prog, vers, proto, port) && all;
      }
    }
    rpcbind_registered_ = true;
    if (all) {
      spdlog::info("nfsd.rpcbind registered nfs={} mount={}", nfs_->port(), mount_->port());
    } else {
      spdlog::warn("nfsd.rpcbind could not register every program (clients need port options)");
    }
  }

  void StartPortmap(const NfsServerOptions& o) {
    portmap_ = std::make_unique<Portmapper>();
    for (uint32_t proto : {kProtoTcp, kProtoUdp}) {
      portmap_->Set(kPortmapProgram, kPortmapVersion, proto, o.portmap_port);
      for (auto [prog, vers, port] : Programs(nfs_->port(), mount_->port())) {
        portmap_->Set(prog, vers, proto, port);
      }
    }
    RpcServerOptions ro;
    ro.address = o.address;
    ro.port = o.portmap_port;
    ro.threads = 1;
    ro.max_record_bytes = 64 << 10;
    auto pm = RpcServer::Start(ro, [p = portmap_.get()](std::string_view r, const Peer& peer) {
      return p->Handle(r, peer);
    });
    if (!pm.ok()) {
      spdlog::warn("nfsd.portmap not started ({}); registering with rpcbind if it runs",
                   pm.status().ToString());
      return;
    }
    portmap_server_ = std::move(pm).value();
  }

  std::unique_ptr<FileSystem> fs_;
  std::unique_ptr<Nfs3Service> service_;
  std::atomic<Nfs3Service*> service_ptr_{nullptr};  // for the change-stream thread
  std::unique_ptr<RpcServer> nfs_;
  std::unique_ptr<RpcServer> mount_;
  std::unique_ptr<Portmapper> portmap_;
  std::unique_ptr<RpcServer> portmap_server_;
  std::unique_ptr<HttpServer> http_;
  bool rpcbind_registered_ = false;
};

NfsServer::NfsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NfsServer::~NfsServer() = default;

StatusOr<std::unique_ptr<NfsServer>> NfsServer::Start(const NfsServerOptions& options) {
  auto impl = std::make_unique<Impl>();
  NEEDLEFS_RETURN_IF_ERROR(impl->Start(options));
  return std::unique_ptr<NfsServer>(new NfsServer(std::move(impl)));
}

uint16_t NfsServer::port() const { return impl_->nfs_->port(); }
uint16_t NfsServer::mount_port() const { return impl_->mount_->port(); }
uint16_t NfsServer::http_port() const { return impl_->http_ ? impl_->http_->port() : 0; }
bool NfsServer::rpcbind_registered() const { return impl_->rpcbind_registered_; }
uint16_t NfsServer::portmap_port() const {
  return impl_->portmap_server_ ? impl_->portmap_server_->port() : 0;
}

}  // namespace needlefs::nfsd
