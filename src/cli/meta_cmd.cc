// `needlefs meta`: flags -> KvOptions + MetaGrpcOptions; runs the namespace
// on RocksDB behind the MetaService gRPC server with its change stream.
#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "client/blob_client.h"
#include "common/config.h"
#include "common/logging.h"
#include "metadata/change_log.h"
#include "metadata/garbage_collector.h"
#include "metadata/kv_store.h"
#include "metadata/meta_service.h"
#include "metadata/namespace.h"

namespace needlefs::cli {
namespace {

struct MetaFlags {
  std::string dir = "./needlefs-data/meta";
  std::string ip = "127.0.0.1";
  uint16_t port = 18888;
  bool sync = true;
  int max_threads = MetaGrpcOptions{}.max_threads;
  std::vector<std::string> volume_servers;
  LogOptions log;
};

int RunMeta(const MetaFlags& f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs meta: %s\n", s.ToString().c_str());
    return 2;
  }
  auto fail = [](const Status& s) {
    spdlog::error("meta.exit error=\"{}\"", s.ToString());
    std::fprintf(stderr, "needlefs meta: %s\n", s.ToString().c_str());
    return 1;
  };
  KvOptions ko;
  ko.sync = f.sync;
  auto store = OpenRocksDbKvStore(f.dir + "/meta.rocksdb", ko);
  if (!store.ok()) return fail(store.status());
  // Declared after the store and before the namespace: destroyed in reverse,
  // so the server goes first, then the namespace, the log and the store.
  ChangeLog log;
  NamespaceOptions no;
  no.on_change = [&log](const ChangeEvent& e) { log.Append(e); };
  auto ns = Namespace::Open(store->get(), no);
  if (!ns.ok()) return fail(ns.status());
  MetaGrpcOptions go;
  go.max_threads = f.max_threads;
  auto server = MetaGrpcServer::Start(ns->get(), &log, f.ip, f.port, go);
  if (!server.ok()) return fail(server.status());
  std::printf("needlefs meta ready grpc=%s:%u dir=%s\n", f.ip.c_str(), (*server)->port(),
              f.dir.c_str());
  std::fflush(stdout);
  // Blobs of deleted and truncated data are deleted in the background.
  std::unique_ptr<BlobClient> blobs;
  std::unique_ptr<GarbageCollector> gc;
  if (!f.volume_servers.empty()) {
    blobs = std::make_unique<BlobClient>(f.volume_servers);
    gc = std::make_unique<GarbageCollector>(
        ns->get(), [&blobs](const std::string& fid) { return blobs->Delete(fid); });
    gc->Start();
  } else {
    spdlog::warn("meta.gc disabled: no -volumeServers, deleted data stays queued");
  }
  // Sessions of clients that crashed expire here, releasing unlinked files.
  std::mutex expiry_mu;
  std::condition_variable expiry_cv;
  bool stopping = false;
  std::thread expiry([&] {
    std::unique_lock<std::mutex> l(expiry_mu);
    while (!expiry_cv.wait_for(l, std::chrono::seconds(5), [&] { return stopping; })) {
      auto n = (*ns)->ExpireSessions(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
      if (!n.ok()) {
        spdlog::warn("meta.expire_sessions error=\"{}\"", n.status().ToString());
      } else if (*n > 0) {
        spdlog::info("meta.expired_sessions count={}", *n);
      }
    }
  });
  int sig = WaitForTerminationSignal();
  spdlog::info("meta.stop signal={}", sig);
  {
    std::lock_guard<std::mutex> l(expiry_mu);
    stopping = true;
  }
  expiry_cv.notify_all();
  expiry.join();
  if (gc) gc->Stop();
  (*server)->Shutdown();
  log.Shutdown();
  Status s = (*store)->Flush();
  if (!s.ok()) return fail(s);
  return 0;
}

}  // namespace

void AddMetaCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("meta", "Run the meta server: the POSIX namespace over gRPC");
  auto f = std::make_shared<MetaFlags>();
  cmd->add_option("--dir", f->dir, "Data directory (the namespace is in DIR/meta.rocksdb)")
      ->capture_default_str();
  cmd->add_option("--ip", f->ip, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->port, "gRPC port (0 = any free port)")->capture_default_str();
  cmd->add_option("--sync", f->sync,
                  "Sync the RocksDB log on every commit (false only for tests/benchmarks)")
      ->capture_default_str();
  cmd->add_option("--volumeServers", f->volume_servers,
                  "Volume servers (host:port, comma-separated) to delete garbage blobs on")
      ->delimiter(',');
  cmd->add_option("--maxThreads", f->max_threads,
                  "Most gRPC calls served at once (each Subscribe stream holds one)")
      ->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunMeta(*f); });
}

}  // namespace needlefs::cli
