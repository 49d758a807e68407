#include "metadata/meta_server.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/http.h"
#include "common/metrics.h"
#include "metadata/change_log.h"
#include "metadata/garbage_collector.h"
#include "metadata/kv_store.h"
#include "metadata/meta_service.h"
#include "metadata/namespace.h"

namespace needlefs {

struct MetaServer::Impl {
  MetaServerOptions options;
  // Destroyed in reverse: the servers first, then the namespace, the change
  // log and the store.
  std::unique_ptr<KvStore> store;
  ChangeLog log;
  std::unique_ptr<Namespace> ns;
  std::unique_ptr<MetaGrpcServer> grpc;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<GarbageCollector> gc;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // GUARDED_BY(mu); set once by Stop()
  std::thread expiry;

  void ExpiryLoop() {
    std::unique_lock<std::mutex> l(mu);
    while (!cv.wait_for(l, std::chrono::milliseconds(options.session_expiry_interval_ms),
                        [this] { return stopping; })) {
      l.unlock();
      auto n = ns->ExpireSessions(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
      if (!n.ok()) {
        spdlog::warn("meta.expire_sessions error=\"{}\"", n.status().ToString());
      } else if (*n > 0) {
        spdlog::info("meta.expired_sessions count={}", *n);
      }
      l.lock();
    }
  }

  HttpResponse Handle(HttpRequest& req) {
    if (req.path == "/metrics") return Metrics::Global().HttpExposition();
    if (req.path == "/status") {
      nlohmann::json j{{"Role", "meta"},
                       {"Dir", options.dir},
                       {"Grpc", options.ip + ":" + std::to_string(grpc->port())},
                       {"ChangeSeq", log.last_seq()},
                       {"GarbageCollection", static_cast<bool>(options.delete_blob)}};
      if (auto fs = ns->GetStatFs(); fs.ok()) {
        j["Inodes"] = fs->inodes;
        j["BytesUsed"] = fs->bytes_used;
      }
      if (auto g = ns->PeekGarbage(1000); g.ok()) {
        j["GarbageQueued"] = g->size() >= 1000 ? std::string("1000+") : std::to_string(g->size());
      }
      return HttpResponse::Json(200, j.dump(2));
    }
    return HttpResponse::Error(404, "unknown path " + req.path);
  }
};

MetaServer::MetaServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetaServer::~MetaServer() { (void)Stop(); }

StatusOr<std::unique_ptr<MetaServer>> MetaServer::Start(const MetaServerOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("meta -dir is required");
  auto impl = std::make_unique<Impl>();
  Impl* raw = impl.get();
  raw->options = options;
  KvOptions ko;
  ko.sync = options.sync;
  NEEDLEFS_ASSIGN_OR_RETURN(raw->store, OpenRocksDbKvStore(options.dir + "/meta.rocksdb", ko));
  NamespaceOptions no;
  no.on_change = [raw](const ChangeEvent& e) { raw->log.Append(e); };
  no.max_inline_bytes = options.max_inline_bytes;
  NEEDLEFS_ASSIGN_OR_RETURN(raw->ns, Namespace::Open(raw->store.get(), no));
  MetaGrpcOptions go;
  go.max_threads = options.max_threads;
  go.frame_port = options.frame_port;
  go.max_inline_bytes = options.max_inline_bytes;
  NEEDLEFS_ASSIGN_OR_RETURN(raw->grpc, MetaGrpcServer::Start(raw->ns.get(), &raw->log, options.ip,
                                                             options.grpc_port, go));
  if (options.http_port >= 0) {
    HttpServerOptions ho;
    ho.listen_address = options.ip;
    ho.port = static_cast<uint16_t>(options.http_port);
    ho.server_name = "needlefs-meta";
    auto http = HttpServer::Start(ho, [raw](HttpRequest& r) { return raw->Handle(r); });
    if (!http.ok()) {
      raw->grpc->Shutdown();
      raw->log.Shutdown();
      return http.status().WithContext("meta HTTP port");
    }
    raw->http = std::move(*http);
  }
  if (options.delete_blob) {
    raw->gc = std::make_unique<GarbageCollector>(raw->ns.get(), options.delete_blob);
    raw->gc->Start();
  } else {
    spdlog::warn("meta.gc disabled: no volume servers or master, deleted data stays queued");
  }
  raw->expiry = std::thread([raw] { raw->ExpiryLoop(); });
  spdlog::info("meta.start grpc={}:{} http={} dir={}", options.ip, raw->grpc->port(),
               raw->http ? raw->http->port() : 0, options.dir);
  return std::unique_ptr<MetaServer>(new MetaServer(std::move(impl)));
}

uint16_t MetaServer::grpc_port() const { return impl_->grpc->port(); }
uint16_t MetaServer::http_port() const { return impl_->http ? impl_->http->port() : 0; }

Status MetaServer::Stop() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    if (impl_->stopping) return Status::OK();
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->expiry.join();
  if (impl_->gc) impl_->gc->Stop();
  if (impl_->http) impl_->http->Stop();
  impl_->grpc->Shutdown();
  impl_->log.Shutdown();
  return impl_->store->Flush();
}

}  // namespace needlefs
