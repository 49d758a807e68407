// `needlefs meta`: flags -> MetaServerOptions; runs the namespace on RocksDB
// behind the MetaService gRPC server with its change stream.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "client/blob_client.h"
#include "common/config.h"
#include "common/logging.h"
#include "metadata/meta_server.h"

namespace needlefs::cli {
namespace {

struct MetaFlags {
  MetaServerOptions options;
  int http_port = -2;  // -2: grpc port - 10000 (0 when the gRPC port is 0)
  std::string master;
  std::vector<std::string> volume_servers;
  LogOptions log;
};

int RunMeta(MetaFlags f) {
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
  f.options.http_port = f.http_port != -2 ? f.http_port : MetaHttpPortFor(f.options.grpc_port);
  // Blobs of deleted and truncated data are deleted in the background.
  std::unique_ptr<BlobClient> blobs;
  if (!f.master.empty() || !f.volume_servers.empty()) {
    BlobClientOptions bo;
    bo.master = f.master;
    bo.volume_servers = f.volume_servers;
    blobs = std::make_unique<BlobClient>(bo);
    f.options.delete_blob = [b = blobs.get()](const FileId& fid) { return b->Delete(fid); };
  }
  auto server = MetaServer::Start(f.options);
  if (!server.ok()) return fail(server.status());
  std::printf("needlefs meta ready grpc=%s:%u http=%s:%u dir=%s\n", f.options.ip.c_str(),
              (*server)->grpc_port(), f.options.ip.c_str(), (*server)->http_port(),
              f.options.dir.c_str());
  std::fflush(stdout);
  int sig = WaitForTerminationSignal();
  spdlog::info("meta.stop signal={}", sig);
  if (Status s = (*server)->Stop(); !s.ok()) return fail(s);
  return 0;
}

}  // namespace

void AddMetaCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("meta", "Run the meta server: the POSIX namespace over gRPC");
  auto f = std::make_shared<MetaFlags>();
  f->options.dir = "./needlefs-data/meta";
  cmd->add_option("--dir", f->options.dir, "Data directory (the namespace is in DIR/meta.rocksdb)")
      ->capture_default_str();
  cmd->add_option("--ip", f->options.ip, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->options.grpc_port, "gRPC port (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--httpPort", f->http_port,
                  "HTTP port of /metrics and /status (default: port - 10000; -1 = none)");
  cmd->add_option("--sync", f->options.sync,
                  "Sync the RocksDB log on every commit (false only for tests/benchmarks)")
      ->capture_default_str();
  cmd->add_option("--master", f->master,
                  "Master HTTP host:port, to find and delete the blobs of removed data");
  cmd->add_option("--volumeServers", f->volume_servers,
                  "Without a master: volume servers (host:port, comma-separated) to delete "
                  "garbage blobs on")
      ->delimiter(',');
  cmd->add_option("--framePort", f->options.frame_port,
                  "Frame RPC port on the same address: the hot path of the clients, with "
                  "fewer thread hand-offs than gRPC (0 = the gRPC port + 100, or any free port; "
                  "-1 = none)")
      ->capture_default_str();
  cmd->add_option("--maxInlineBytes", f->options.max_inline_bytes,
                  "Keep the data of files written in one piece of at most this many bytes in meta "
                  "with the inode (one round trip to write or read; 0 = never)")
      ->capture_default_str();
  cmd->add_option("--maxThreads", f->options.max_threads,
                  "Most gRPC calls served at once (each Subscribe stream holds one)")
      ->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunMeta(*f); });
}

}  // namespace needlefs::cli
