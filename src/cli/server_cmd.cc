// `needlefs server`: every role in one process with its data under one
// directory -- a master, N volume servers (in racks, so replication can be
// tried on one machine), meta, and optionally a FUSE mount. It prints the
// endpoints and ready-to-paste commands, and stops cleanly on SIGINT/SIGTERM
// (unmounting first). The NFS server and the S3 gateway join here later.
//
// Data layout: DIR/master, DIR/volume-1 .. DIR/volume-N, DIR/meta.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "client/blob_client.h"
#include "cluster/master_server.h"
#include "common/config.h"
#include "common/http.h"
#include "common/logging.h"
#include "fuse/fuse_mount.h"
#include "gateway/s3_server.h"
#include "metadata/meta_server.h"
#include "nfsd/nfs_server.h"
#include "objstore/volume_node.h"

namespace needlefs::cli {
namespace {

struct ServerFlags {
  std::string dir = "./needlefs-data";
  std::string ip = "127.0.0.1";
  int volumes = 1;
  int racks = 2;
  std::string mount;
  std::string replication;  // "" = 000 for one volume server, 010 for more
  int master_port = 9333;
  int volume_port = 8080;
  int meta_port = 18888;
  int volume_max = 8;
  uint64_t volume_size_limit_mb = 1024;
  std::string durability = "group";
  uint64_t mount_cache_mb = 256;
  std::string mount_op_stats;
  bool allow_other = false;
  int nfs_port = 2049;  // -1: no nfsd
  int nfs_mount_port = 20048;
  bool portmap = true;
  std::string exports;  // "" = DIR/exports.yaml when it exists, else loopback only
  int s3_port = 8333;   // -1: no S3 gateway
  uint64_t s3_object_cache_mb = 32;
  LogOptions log;
};

int RunServer(ServerFlags f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs server: %s\n", s.ToString().c_str());
    return 2;
  }
  auto fail = [](const Status& s) {
    spdlog::error("server.exit error=\"{}\"", s.ToString());
    std::fprintf(stderr, "needlefs server: %s\n", s.ToString().c_str());
    return 1;
  };
  if (f.volumes < 1 || f.volumes > 64) {
    return fail(Status::InvalidArgument("-volumes must be 1..64"));
  }
  if (f.racks < 1) return fail(Status::InvalidArgument("-racks must be at least 1"));
  if (f.replication.empty()) f.replication = f.volumes > 1 && f.racks > 1 ? "010" : "000";
  if (!f.mount.empty()) {
    struct stat st;
    if (::stat(f.mount.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return fail(Status::InvalidArgument("-mount " + f.mount + " is not a directory"));
    }
  }
  auto durability = ParseDurability(f.durability);
  if (!durability.ok()) return fail(durability.status());

  // The master first: volume servers join it, meta deletes garbage through it.
  MasterOptions mo;
  mo.ip = f.ip;
  mo.port = static_cast<uint16_t>(f.master_port);
  mo.grpc_port = GrpcPortFor(f.master_port);
  mo.dir = f.dir + "/master";
  mo.default_replication = f.replication;
  mo.volume_size_limit_bytes = f.volume_size_limit_mb << 20;
  auto master = MasterServer::Start(mo);
  if (!master.ok()) return fail(master.status().WithContext("master"));
  const std::string master_addr = JoinHostPort(f.ip, (*master)->http_port());

  std::vector<std::unique_ptr<VolumeNode>> volumes;
  std::vector<std::string> volume_addrs;
  for (int i = 0; i < f.volumes; ++i) {
    VolumeNodeOptions vo;
    vo.store.dir = f.dir + "/volume-" + std::to_string(i + 1);
    vo.store.max_volumes = f.volume_max;
    vo.store.durability = *durability;
    vo.store.volume_size_limit_bytes = f.volume_size_limit_mb << 20;
    int port = f.volume_port ? f.volume_port + i : 0;
    vo.server.ip = f.ip;
    vo.server.port = static_cast<uint16_t>(port);
    vo.server.grpc_port = GrpcPortFor(port);
    vo.server.master = master_addr;
    vo.master_grpc_port = (*master)->grpc_port();
    vo.data_center = "dc1";
    vo.rack = "rack" + std::to_string(i % f.racks + 1);
    auto node = VolumeNode::Start(vo);
    if (!node.ok()) {
      return fail(node.status().WithContext("volume server " + std::to_string(i + 1)));
    }
    volume_addrs.push_back(JoinHostPort(f.ip, (*node)->http_port()));
    volumes.push_back(std::move(*node));
  }
  // Wait (up to 10 s) until every volume server has joined, so the first
  // write finds them.
  for (int i = 0; i < 200 && (*master)->node_count() < volumes.size(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if ((*master)->node_count() < volumes.size()) {
    spdlog::warn("server.start only {} of {} volume servers joined the master",
                 (*master)->node_count(), volumes.size());
  }

  BlobClientOptions bo;
  bo.master = master_addr;
  BlobClient blobs(bo);
  MetaServerOptions meo;
  meo.dir = f.dir + "/meta";
  meo.ip = f.ip;
  meo.grpc_port = static_cast<uint16_t>(f.meta_port);
  meo.http_port = MetaHttpPortFor(f.meta_port);
  meo.delete_blob = [&blobs](const FileId& fid) { return blobs.Delete(fid); };
  auto meta = MetaServer::Start(meo);
  if (!meta.ok()) return fail(meta.status().WithContext("meta"));
  const std::string meta_addr = JoinHostPort(f.ip, (*meta)->grpc_port());

  std::unique_ptr<FuseMount> mount;
  std::thread mount_thread;
  if (!f.mount.empty()) {
    FuseMountOptions fo;
    fo.meta = meta_addr;
    fo.master = master_addr;
    fo.mountpoint = f.mount;
    if (f.allow_other) fo.allow_other = true;  // else: on when run by root
    fo.handle_signals = false;                 // this thread waits for them and calls Stop()
    fo.file.cache_bytes = f.mount_cache_mb << 20;
    if (!f.mount_op_stats.empty()) {
      fo.op_stats_file = std::filesystem::absolute(f.mount_op_stats).string();
    }
    fo.file.replication = f.replication;
    auto m = FuseMount::Mount(fo);
    if (!m.ok()) return fail(m.status().WithContext("mount " + f.mount));
    mount = std::move(*m);
    mount_thread = std::thread([&mount, dir = f.mount] {
      Status s = mount->Run();
      if (s.ok()) {
        spdlog::info("server.mount_ended mountpoint={}", dir);
      } else {
        spdlog::error("server.mount_ended mountpoint={} error=\"{}\"", dir, s.ToString());
      }
    });
  }

  // NFS: a port already taken (another nfsd, a test) leaves the rest
  // running, with a warning.
  std::unique_ptr<nfsd::NfsServer> nfs;
  if (f.nfs_port >= 0) {
    nfsd::NfsServerOptions no;
    no.meta = meta_addr;
    no.master = master_addr;
    no.address = f.ip;
    no.port = static_cast<uint16_t>(f.nfs_port);
    no.mount_port = static_cast<uint16_t>(f.nfs_mount_port);
    no.portmap = f.portmap;
    no.exports_file = f.exports;
    if (no.exports_file.empty()) {
      struct stat st;
      const std::string in_dir = f.dir + "/exports.yaml";
      if (::stat(in_dir.c_str(), &st) == 0) no.exports_file = in_dir;
    }
    no.file.replication = f.replication;
    auto n = nfsd::NfsServer::Start(no);
    if (n.ok()) {
      nfs = std::move(*n);
    } else {
      spdlog::warn("server.nfsd not started: {}", n.status().ToString());
      std::fprintf(stderr, "needlefs server: NFS not started: %s\n", n.status().ToString().c_str());
    }
  }

  // S3: identities in DIR (made with a new one at the first start, also
  // written as an AWS shared-credentials file); a taken port is a warning.
  std::unique_ptr<gateway::S3Server> s3;
  if (f.s3_port >= 0) {
    gateway::S3ServerOptions so;
    so.meta = meta_addr;
    so.master = master_addr;
    so.address = f.ip;
    so.port = static_cast<uint16_t>(f.s3_port);
    so.identities_file = f.dir + "/s3-identities.json";
    so.credentials_file = f.dir + "/s3-credentials";
    so.file.replication = f.replication;
    so.gateway.object_cache_bytes = f.s3_object_cache_mb << 20;
    auto s = gateway::S3Server::Start(so);
    if (s.ok()) {
      s3 = std::move(*s);
    } else {
      spdlog::warn("server.s3 not started: {}", s.status().ToString());
      std::fprintf(stderr, "needlefs server: S3 not started: %s\n", s.status().ToString().c_str());
    }
  }

  std::string vols;
  for (const auto& a : volume_addrs) vols += (vols.empty() ? "" : ",") + a;
  std::printf(
      "needlefs server ready master=%s volumes=%s meta=%s meta_http=%s:%u mount=%s "
      "dir=%s replication=%s nfs=%s s3=%s\n",
      master_addr.c_str(), vols.c_str(), meta_addr.c_str(), f.ip.c_str(), (*meta)->http_port(),
      f.mount.empty() ? "-" : f.mount.c_str(), f.dir.c_str(), f.replication.c_str(),
      nfs ? JoinHostPort(f.ip, nfs->port()).c_str() : "-",
      s3 ? JoinHostPort(f.ip, s3->port()).c_str() : "-");
  std::printf("\n  master      http://%s  (status page: http://%s/)\n", master_addr.c_str(),
              master_addr.c_str());
  for (size_t i = 0; i < volume_addrs.size(); ++i) {
    std::printf("  volume %-3zu  http://%s  (rack%zu)\n", i + 1, volume_addrs[i].c_str(),
                i % static_cast<size_t>(f.racks) + 1);
  }
  std::printf("  meta        grpc %s, http://%s:%u/status\n", meta_addr.c_str(), f.ip.c_str(),
              (*meta)->http_port());
  if (!f.mount.empty()) std::printf("  mount       %s\n", f.mount.c_str());
  if (nfs) {
    std::printf("  nfs         %s (MOUNT %u%s)\n", JoinHostPort(f.ip, nfs->port()).c_str(),
                nfs->mount_port(),
                nfs->portmap_port()
                    ? (", portmapper " + std::to_string(nfs->portmap_port())).c_str()
                : nfs->rpcbind_registered() ? ", registered with rpcbind"
                                            : "");
  }
  if (s3) {
    std::printf("  s3          http://%s  (credentials: %s/s3-credentials%s)\n",
                JoinHostPort(f.ip, s3->port()).c_str(), f.dir.c_str(),
                s3->created_identities() ? (", new access key " + s3->access_key()).c_str() : "");
  }
  std::printf("\nTry:\n");
  std::printf("  curl 'http://%s/dir/assign'\n", master_addr.c_str());
  std::printf("  mkdir -p /mnt/needlefs && needlefs mount -meta %s -master %s /mnt/needlefs\n",
              meta_addr.c_str(), master_addr.c_str());
  std::printf(
      "  mount -t needlefs %s /mnt/needlefs   (with mount-tools/mount.needlefs installed)\n",
      meta_addr.c_str());
  if (nfs && (nfs->portmap_port() == 111 || nfs->rpcbind_registered()) && nfs->port() == 2049) {
    std::printf("  mount -t nfs -o vers=3,nolock %s:/ /mnt/nfs\n", f.ip.c_str());
  } else if (nfs) {
    std::printf("  mount -t nfs -o vers=3,proto=tcp,nolock,port=%u,mountport=%u %s:/ /mnt/nfs\n",
                nfs->port(), nfs->mount_port(), f.ip.c_str());
  }
  if (s3) {
    std::printf(
        "  AWS_SHARED_CREDENTIALS_FILE=%s/s3-credentials aws --endpoint-url http://%s s3 ls\n",
        f.dir.c_str(), JoinHostPort(f.ip, s3->port()).c_str());
  }
  std::printf("  needlefs admin cluster.status -master %s\n", master_addr.c_str());
  std::printf("Stop: Ctrl-C or kill %d\n\n", static_cast<int>(getpid()));
  std::fflush(stdout);

  int sig = WaitForTerminationSignal();
  spdlog::info("server.stop signal={}", sig);
  int rc = 0;
  s3.reset();
  nfs.reset();
  if (mount) {
    mount->Stop();
    mount_thread.join();
    mount.reset();
  }
  if (Status s = (*meta)->Stop(); !s.ok()) rc = fail(s.WithContext("meta"));
  for (auto& v : volumes) {
    if (Status s = v->Stop(); !s.ok()) rc = fail(s.WithContext("volume"));
  }
  (*master)->Stop();
  std::printf("needlefs server stopped\n");
  std::fflush(stdout);
  return rc;
}

}  // namespace

void AddServerCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "server", "Run master, volume servers and meta in one process (and -mount a FUSE mount)");
  auto f = std::make_shared<ServerFlags>();
  cmd->add_option("--dir", f->dir, "Data directory of every role")->capture_default_str();
  cmd->add_option("--ip", f->ip,
                  "Address every role listens on and announces (use this machine's address to "
                  "serve others)")
      ->capture_default_str();
  cmd->add_option("--volumes", f->volumes, "Volume servers to run in this process")
      ->capture_default_str();
  cmd->add_option("--racks", f->racks, "Racks the volume servers are spread over")
      ->capture_default_str();
  cmd->add_option("--mount", f->mount, "Also mount the file system (FUSE) at this directory");
  cmd->add_flag("--allowOther", f->allow_other,
                "Let other users use the mount (default when run by root)");
  cmd->add_option("--defaultReplication", f->replication,
                  "Replica placement xyz (default: 000 with one volume server, 010 with more)");
  cmd->add_option("--master.port", f->master_port, "Master HTTP port (gRPC: +10000; 0 = free)")
      ->capture_default_str();
  cmd->add_option("--volume.port", f->volume_port,
                  "First volume server's HTTP port (the next ones count up; 0 = free)")
      ->capture_default_str();
  cmd->add_option("--meta.port", f->meta_port, "Meta gRPC port (HTTP: -10000; 0 = free)")
      ->capture_default_str();
  cmd->add_option("--volume.max", f->volume_max, "Volume slots per volume server")
      ->capture_default_str();
  cmd->add_option("--volumeSizeLimitMB", f->volume_size_limit_mb, "Volumes are full at this size")
      ->capture_default_str();
  cmd->add_option("--durability", f->durability, "none | group | always")->capture_default_str();
  cmd->add_option("--mount.opStats", f->mount_op_stats,
                  "At unmount, write the FUSE requests the mount served (count, mean and total "
                  "time per operation) to this file");
  cmd->add_option("--mount.cacheMB", f->mount_cache_mb, "Read cache of the mount (MiB)")
      ->capture_default_str();
  cmd->add_option("--nfs.port", f->nfs_port,
                  "NFS port of the built-in nfsd (-1 = no NFS; 0 = free)")
      ->capture_default_str();
  cmd->add_option("--nfs.mountPort", f->nfs_mount_port, "MOUNT port of the built-in nfsd")
      ->capture_default_str();
  cmd->add_option("--portmap", f->portmap,
                  "Answer the portmapper on 111 when nothing else does (for `mount -t nfs` "
                  "without port options)")
      ->capture_default_str();
  cmd->add_option("--exports", f->exports,
                  "NFS exports YAML (default: DIR/exports.yaml, else / to loopback clients)");
  cmd->add_option("--s3.objectCacheMB", f->s3_object_cache_mb,
                  "Object cache of the S3 gateway, MiB (0 = off)")
      ->capture_default_str();
  cmd->add_option("--s3.port", f->s3_port, "Port of the built-in S3 gateway (-1 = none; 0 = free)")
      ->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunServer(*f); });
}

}  // namespace needlefs::cli
