// `needlefs volume`: flags -> StoreOptions + VolumeServerOptions.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/logging.h"
#include "objstore/volume_node.h"

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
  int anti_entropy_interval_ms = 600'000;
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
  VolumeNodeOptions o;
  o.store.dir = f.dir;
  o.store.max_volumes = f.max;
  auto durability = ParseDurability(f.durability);
  if (!durability.ok()) return fail(durability.status());
  o.store.durability = *durability;
  auto index = ParseIndexMode(f.index);
  if (!index.ok()) return fail(index.status());
  o.store.index_mode = *index;
  o.store.volume_size_limit_bytes = f.volume_size_limit_mb << 20;
  o.server.ip = f.ip;
  o.server.port = f.port;
  o.server.grpc_port = f.grpc_port >= 0 ? static_cast<uint16_t>(f.grpc_port) : GrpcPortFor(f.port);
  o.server.max_file_size_bytes = f.file_size_limit_mb << 20;
  o.server.compress = f.compress;
  o.server.master = f.mserver;
  if (f.anti_entropy_interval_ms < 0) {
    return fail(Status::InvalidArgument("-antiEntropyIntervalMs must be >= 0"));
  }
  o.server.anti_entropy_interval_ms = f.anti_entropy_interval_ms;
  o.master_grpc_port = static_cast<uint16_t>(f.mserver_grpc_port >= 0 ? f.mserver_grpc_port : 0);
  o.public_url = f.public_url;
  o.data_center = f.data_center;
  o.rack = f.rack;
  o.allocate = f.allocate;
  o.allocate_replication = f.replication;
  auto node = VolumeNode::Start(o);
  if (!node.ok()) return fail(node.status());
  std::printf("needlefs volume ready http=%s:%u grpc=%s:%u dir=%s durability=%s\n", f.ip.c_str(),
              (*node)->http_port(), f.ip.c_str(), (*node)->grpc_port(), f.dir.c_str(),
              f.durability.c_str());
  std::fflush(stdout);
  int sig = WaitForTerminationSignal();
  spdlog::info("volume.stop signal={}", sig);
  if (Status s = (*node)->Stop(); !s.ok()) return fail(s);
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
  cmd->add_option("--antiEntropyIntervalMs", f->anti_entropy_interval_ms,
                  "Time between rounds that pull what replicated volumes lack from their other "
                  "replicas (0 = only on admin volume.check)")
      ->capture_default_str();
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
