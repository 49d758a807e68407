// `needlefs volume`: flags -> StoreOptions + VolumeServerOptions.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "common/config.h"
#include "common/http.h"
#include "common/logging.h"
#include "objstore/heartbeat.h"
#include "objstore/store.h"
#include "objstore/volume_server.h"

namespace needlefs::cli {
namespace {

struct VolumeFlags {
  std::string dir = "./needlefs-data/volume";
  std::string ip = "127.0.0.1";
  uint16_t port = 8080;
  int grpc_port = -1;
  int max = 8;
  std::string durability = "group";
  std::string index = "memory";
  uint64_t volume_size_limit_mb = 30 * 1024;
  uint64_t file_size_limit_mb = 256;
  uint32_t allocate = 0;
  std::string replication = "000";
  bool compress = true;
  std::string mserver;
  int mserver_grpc_port = -1;
  std::string data_center = "DefaultDataCenter";
  std::string rack = "DefaultRack";
  std::string public_url;
  LogOptions log;
};

int RunVolume(const VolumeFlags& f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs volume: %s\n", s.ToString().c_str());
    return 2;
  }
  auto fail = [](const Status& s) {
    spdlog::error("volume.exit error=\"{}\"", s.ToString());
    std::fprintf(stderr, "needlefs volume: %s\n", s.ToString().c_str());
    return 1;
  };
  StoreOptions so;
  so.dir = f.dir;
  so.max_volumes = f.max;
  auto durability = ParseDurability(f.durability);
  if (!durability.ok()) return fail(durability.status());
  so.durability = *durability;
  auto index = ParseIndexMode(f.index);
  if (!index.ok()) return fail(index.status());
  so.index_mode = *index;
  so.volume_size_limit_bytes = f.volume_size_limit_mb << 20;
  auto placement = ReplicaPlacement::Parse(f.replication);
  if (!placement.ok()) return fail(placement.status());

  auto store = Store::Open(so);
  if (!store.ok()) return fail(store.status());
  for (uint32_t id = 1; id <= f.allocate; ++id) {
    if (Status s = (*store)->AllocateVolume(VolumeId(id), "", *placement, 0); !s.ok()) {
      return fail(s.WithContext("allocate volume " + std::to_string(id)));
    }
  }
  VolumeServerOptions vo;
  vo.ip = f.ip;
  vo.port = f.port;
  vo.grpc_port =
      static_cast<uint16_t>(f.grpc_port >= 0 ? f.grpc_port : (f.port ? f.port + 10000 : 0));
  vo.max_file_size_bytes = f.file_size_limit_mb << 20;
  vo.compress = f.compress;
  vo.master = f.mserver;
  auto server = VolumeServer::Start(vo, store->get());
  if (!server.ok()) return fail(server.status());
  std::printf("needlefs volume ready http=%s:%u grpc=%s:%u dir=%s durability=%s\n", f.ip.c_str(),
              (*server)->http_port(), f.ip.c_str(), (*server)->grpc_port(), f.dir.c_str(),
              f.durability.c_str());
  std::fflush(stdout);
  std::unique_ptr<Heartbeater> heartbeat;
  if (!f.mserver.empty()) {
    std::string mhost;
    uint16_t mport;
    if (Status s = SplitHostPort(f.mserver, &mhost, &mport); !s.ok()) return fail(s);
    HeartbeatOptions ho;
    int grpc = f.mserver_grpc_port >= 0 ? f.mserver_grpc_port : mport + 10000;
    ho.master = JoinHostPort(mhost, static_cast<uint16_t>(grpc));
    ho.ip = f.ip;
    ho.http_port = (*server)->http_port();
    ho.grpc_port = (*server)->grpc_port();
    ho.public_url = f.public_url;
    ho.data_center = f.data_center;
    ho.rack = f.rack;
    heartbeat = Heartbeater::Start(ho, store->get());
  }
  int sig = WaitForTerminationSignal();
  spdlog::info("volume.stop signal={}", sig);
  if (heartbeat) heartbeat->Stop();
  (*server)->Stop();
  Status s = (*store)->SyncAll();
  if (!s.ok()) return fail(s);
  return 0;
}

}  // namespace

void AddVolumeCommand(CLI::App& app, int* exit_code) {
  auto* cmd =
      app.add_subcommand("volume", "Run a volume server: needles in volume files over HTTP");
  auto f = std::make_shared<VolumeFlags>();
  cmd->add_option("--dir", f->dir, "Data directory for the volume files")->capture_default_str();
  cmd->add_option("--ip", f->ip, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->port, "HTTP port (0 = any free port)")->capture_default_str();
  cmd->add_option("--grpcPort", f->grpc_port, "gRPC admin port (default: port + 10000)");
  cmd->add_option("--max", f->max, "Most volumes this server holds")->capture_default_str();
  cmd->add_option("--durability", f->durability, "none | group | always")->capture_default_str();
  cmd->add_option("--index", f->index, "Needle index: memory | rocksdb")->capture_default_str();
  cmd->add_option("--volumeSizeLimitMB", f->volume_size_limit_mb,
                  "A volume turns read-only at this size (MiB)")
      ->capture_default_str();
  cmd->add_option("--fileSizeLimitMB", f->file_size_limit_mb,
                  "Largest blob accepted (MiB); larger gets 413")
      ->capture_default_str();
  cmd->add_option("--allocate", f->allocate,
                  "Ensure volumes 1..N exist (until a master assigns volumes)");
  cmd->add_option("--replication", f->replication, "Replica placement of allocated volumes")
      ->capture_default_str();
  cmd->add_flag("!--noCompress", f->compress, "Do not gzip compressible content");
  cmd->add_option("--mserver", f->mserver, "Master host:port (HTTP) to send heartbeats to");
  cmd->add_option("--mserverGrpcPort", f->mserver_grpc_port,
                  "The master's gRPC port (default: its HTTP port + 10000)");
  cmd->add_option("--dataCenter", f->data_center, "Data center of this server")
      ->capture_default_str();
  cmd->add_option("--rack", f->rack, "Rack of this server")->capture_default_str();
  cmd->add_option("--publicUrl", f->public_url, "Address clients use (default ip:port)");
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunVolume(*f); });
}

}  // namespace needlefs::cli
