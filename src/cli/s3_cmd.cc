// `needlefs s3`: flags -> S3ServerOptions; serves the S3 API over the
// cluster until SIGINT/SIGTERM.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/logging.h"
#include "gateway/s3_server.h"

namespace needlefs::cli {
namespace {

struct S3Flags {
  gateway::S3ServerOptions options;
  uint64_t cache_mb = 256;
  uint64_t object_cache_mb = 32;
  LogOptions log;
};

int RunS3(S3Flags f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs s3: %s\n", s.ToString().c_str());
    return 2;
  }
  f.options.file.cache_bytes = f.cache_mb << 20;
  f.options.gateway.object_cache_bytes = f.object_cache_mb << 20;
  if (f.options.identities_file.empty()) {
    std::fprintf(stderr, "needlefs s3: -identities FILE is required\n");
    return 2;
  }
  auto server = gateway::S3Server::Start(f.options);
  if (!server.ok()) {
    spdlog::error("s3.exit error=\"{}\"", server.status().ToString());
    std::fprintf(stderr, "needlefs s3: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("needlefs s3 ready http=%s:%u identities=%s\n", f.options.address.c_str(),
              (*server)->port(), f.options.identities_file.c_str());
  if ((*server)->created_identities()) {
    std::printf("  new identity: access key %s (secret in %s)\n", (*server)->access_key().c_str(),
                f.options.credentials_file.empty() ? f.options.identities_file.c_str()
                                                   : f.options.credentials_file.c_str());
  }
  std::fflush(stdout);
  int sig = WaitForTerminationSignal();
  spdlog::info("s3.stop signal={}", sig);
  server->reset();
  return 0;
}

}  // namespace

void AddS3Command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("s3", "Serve the namespace over the S3 API");
  auto f = std::make_shared<S3Flags>();
  f->options.meta = "127.0.0.1:18888";
  f->options.master = "127.0.0.1:9333";
  cmd->add_option("--meta", f->options.meta, "Meta server host:port (gRPC)")->capture_default_str();
  cmd->add_option("--master", f->options.master, "Master host:port (HTTP)")->capture_default_str();
  cmd->add_option("--ip", f->options.address, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->options.port, "HTTP port (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--identities", f->options.identities_file,
                  "Identities JSON (made with one new identity when missing)");
  cmd->add_option("--credentials", f->options.credentials_file,
                  "Where a new identity is also written as an AWS shared-credentials file");
  cmd->add_option("--domainName", f->options.gateway.domain,
                  "Domain of virtual-hosted-style requests (<bucket>.<domain>)");
  cmd->add_option("--region", f->options.gateway.region, "Region reported")->capture_default_str();
  cmd->add_option("--cacheMB", f->cache_mb, "Read cache, MiB")->capture_default_str();
  cmd->add_option("--objectCacheMB", f->object_cache_mb,
                  "Object cache (headers, and bytes of objects up to 64 KiB; checked against "
                  "meta at every request), MiB; 0 = off")
      ->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunS3(*f); });
}

}  // namespace needlefs::cli
