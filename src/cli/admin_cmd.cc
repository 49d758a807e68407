// `needlefs admin <command>`: operator commands. Until the master exists the
// volume.* commands talk to one volume server's gRPC admin port (-server
// host:grpcPort); fsck opens a stopped meta server's store.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "client/volume_admin_client.h"
#include "common/http.h"
#include "metadata/fsck.h"
#include "metadata/kv_store.h"

namespace needlefs::cli {
namespace {

int Fail(const char* cmd, const Status& s) {
  std::fprintf(stderr, "needlefs admin %s: %s\n", cmd, s.ToString().c_str());
  return 1;
}

/// `admin cluster.status`: the master's view as a tree.
int RunClusterStatus(const std::string& master) {
  std::string host;
  uint16_t port;
  if (Status s = SplitHostPort(master, &host, &port); !s.ok()) return Fail("cluster.status", s);
  HttpClient c(host, port, 10'000);
  auto r = c.Request("GET", "/cluster/status");
  if (!r.ok()) return Fail("cluster.status", r.status());
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object()) {
    return Fail("cluster.status",
                Status::Unavailable("master answered " + std::to_string(r->status)));
  }
  std::printf("master %s, max volume id %lu\n", j.value("Leader", "").c_str(),
              static_cast<unsigned long>(j.value("MaxVolumeId", 0u)));
  size_t servers = 0;
  for (auto& [dc, racks] : j["Topology"].items()) {
    std::printf("data center %s\n", dc.c_str());
    for (auto& [rack, nodes] : racks.items()) {
      std::printf("  rack %s\n", rack.c_str());
      for (auto& n : nodes) {
        std::printf("    %-24s free slots %d\n", n.value("node", "").c_str(),
                    n.value("freeSlots", 0));
        ++servers;
      }
    }
  }
  size_t under = j["UnderReplicated"].is_array() ? j["UnderReplicated"].size() : 0;
  for (auto& u : j["UnderReplicated"]) {
    std::printf("under-replicated: volume %u (copies on %zu servers)\n", u.value("volumeId", 0u),
                u["holders"].size());
  }
  std::printf("%zu volume servers, %zu under-replicated volumes\n", servers, under);
  return 0;
}

struct FsckFlags {
  std::string dir = "./needlefs-data/meta";
  bool repair = false;
};

/// `admin fsck`: checks the namespace of a stopped meta server (RocksDB
/// allows one process at a time) and repairs it with -repair.
int RunFsck(const FsckFlags& f) {
  auto store = OpenRocksDbKvStore(f.dir + "/meta.rocksdb");
  if (!store.ok()) {
    return Fail("fsck", store.status().WithContext("open (is `needlefs meta` still running?)"));
  }
  auto rep = Fsck(**store, f.repair, [](uint64_t done, uint64_t total) {
    std::fprintf(stderr, "\r  checked %lu/%lu inodes", static_cast<unsigned long>(done),
                 static_cast<unsigned long>(total));
  });
  if (!rep.ok()) return Fail("fsck", rep.status());
  for (const auto& p : rep->problems) std::printf("problem: %s\n", p.c_str());
  std::printf("fsck: %lu inodes, %lu entries, %lu chunks, %lu garbage entries: %zu problems",
              static_cast<unsigned long>(rep->inodes), static_cast<unsigned long>(rep->entries),
              static_cast<unsigned long>(rep->chunks),
              static_cast<unsigned long>(rep->garbage_entries), rep->problems.size());
  if (f.repair) std::printf(", %lu repairs", static_cast<unsigned long>(rep->repaired));
  std::printf("\n");
  Status s = (*store)->Flush();
  if (!s.ok()) return Fail("fsck", s);
  return rep->clean() || f.repair ? 0 : 1;
}

struct AdminFlags {
  std::string server = "127.0.0.1:18080";
  uint32_t volume_id = 0;
  std::string collection;
  std::string replication = "000";
  std::string ttl;
  double garbage_threshold = 0.3;
  bool readonly = false;
  bool writable = false;
};

double MiB(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

void ProgressBar(uint32_t vid, uint64_t done, uint64_t total) {
  const int width = 30;
  int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r  volume %u [%.*s%*s] %3d%% (%lu/%lu needles)", vid, filled,
               "##############################", width - filled, "",
               total ? static_cast<int>(100 * done / total) : 100, static_cast<unsigned long>(done),
               static_cast<unsigned long>(total));
  std::fflush(stderr);
}

int RunList(VolumeAdminClient& c) {
  auto vols = c.VolumeStatus(VolumeId(0));
  if (!vols.ok()) return Fail("volume.list", vols.status());
  std::printf("%6s %-12s %10s %10s %8s %6s %5s %-4s %s\n", "id", "collection", "needles",
              "size MiB", "garbage", "repl", "ttl", "ro", "reason");
  for (const auto& v : *vols) {
    double ratio = v.data_bytes ? static_cast<double>(v.garbage_bytes) / v.data_bytes : 0;
    std::printf("%6u %-12s %10lu %10.1f %7.1f%% %6s %5s %-4s %s\n", v.id.value,
                v.collection.empty() ? "-" : v.collection.c_str(),
                static_cast<unsigned long>(v.needle_count), MiB(v.data_bytes), ratio * 100,
                v.replication.c_str(), v.ttl.empty() ? "-" : v.ttl.c_str(),
                v.read_only ? "yes" : "no", v.read_only_reason.c_str());
  }
  std::printf("%zu volumes\n", vols->size());
  return 0;
}

int RunVacuum(VolumeAdminClient& c, const AdminFlags& f) {
  std::vector<VolumeId> ids;
  if (f.volume_id) {
    ids.push_back(VolumeId(f.volume_id));
  } else {
    auto vols = c.VolumeStatus(VolumeId(0));
    if (!vols.ok()) return Fail("volume.vacuum", vols.status());
    for (const auto& v : *vols) ids.push_back(v.id);
  }
  uint64_t before = 0, after = 0;
  int vacuumed = 0, skipped = 0, failed = 0;
  for (VolumeId id : ids) {
    auto r = c.Compact(id, f.garbage_threshold,
                       [&](uint64_t done, uint64_t total) { ProgressBar(id.value, done, total); });
    if (!r.ok()) {
      std::fprintf(stderr, "\n  volume %u: %s\n", id.value, r.status().ToString().c_str());
      ++failed;
      continue;
    }
    before += r->bytes_before;
    after += r->bytes_after;
    if (r->skipped) {
      ++skipped;
      std::fprintf(stderr, "  volume %u: garbage below %.0f%%, skipped\n", id.value,
                   f.garbage_threshold * 100);
    } else {
      ++vacuumed;
      std::fprintf(stderr, "\n  volume %u: %.1f MiB -> %.1f MiB\n", id.value, MiB(r->bytes_before),
                   MiB(r->bytes_after));
    }
  }
  std::printf("vacuum: %d vacuumed, %d skipped, %d failed; %.1f MiB -> %.1f MiB (%.1f MiB freed)\n",
              vacuumed, skipped, failed, MiB(before), MiB(after), MiB(before - after));
  return failed ? 1 : 0;
}

int RunAdmin(const std::string& cmd, const AdminFlags& f) {
  auto client = VolumeAdminClient::Create(f.server);
  if (!client.ok()) return Fail(cmd.c_str(), client.status());
  VolumeAdminClient& c = **client;
  if (cmd == "volume.list") return RunList(c);
  if (cmd == "volume.vacuum") return RunVacuum(c, f);
  if (f.volume_id == 0) {
    return Fail(cmd.c_str(), Status::InvalidArgument("-volumeId is required"));
  }
  VolumeId id(f.volume_id);
  Status s;
  if (cmd == "volume.allocate") {
    s = c.AllocateVolume(id, f.collection, f.replication, f.ttl);
  } else if (cmd == "volume.mark") {
    if (f.readonly == f.writable) {
      return Fail(cmd.c_str(), Status::InvalidArgument("give exactly one of -readonly, -writable"));
    }
    s = c.MarkReadonly(id, f.readonly);
  } else if (cmd == "volume.delete") {
    s = c.DeleteVolume(id);
  }
  if (!s.ok()) return Fail(cmd.c_str(), s);
  std::printf("%s volume %u: ok\n", cmd.c_str(), id.value);
  return 0;
}

}  // namespace

void AddAdminCommand(CLI::App& app, int* exit_code) {
  auto* admin = app.add_subcommand("admin", "Operator commands against a volume server");
  admin->require_subcommand(1);
  auto f = std::make_shared<AdminFlags>();
  struct Cmd {
    const char* name;
    const char* help;
  };
  for (Cmd c : {Cmd{"volume.list", "List the volumes and their garbage"},
                Cmd{"volume.allocate", "Create a volume"},
                Cmd{"volume.vacuum", "Compact volumes above a garbage threshold"},
                Cmd{"volume.mark", "Mark a volume -readonly or -writable"},
                Cmd{"volume.delete", "Delete a volume and its files"}}) {
    auto* sub = admin->add_subcommand(c.name, c.help);
    std::string name = c.name;
    sub->add_option("--server", f->server, "Volume server gRPC host:port")->capture_default_str();
    if (name != "volume.list") {
      sub->add_option("--volumeId", f->volume_id,
                      name == "volume.vacuum" ? "Volume to vacuum (default: all)" : "Volume id");
    }
    if (name == "volume.allocate") {
      sub->add_option("--collection", f->collection, "Collection name");
      sub->add_option("--replication", f->replication, "Replica placement xyz")
          ->capture_default_str();
      sub->add_option("--ttl", f->ttl, "Time to live, e.g. 3d");
    }
    if (name == "volume.vacuum") {
      sub->add_option("--garbageThreshold", f->garbage_threshold,
                      "Vacuum only volumes with at least this garbage ratio")
          ->capture_default_str();
    }
    if (name == "volume.mark") {
      sub->add_flag("--readonly", f->readonly, "Refuse writes");
      sub->add_flag("--writable", f->writable, "Take writes again");
    }
    sub->callback([f, name, exit_code] { *exit_code = RunAdmin(name, *f); });
  }
  auto* cs = admin->add_subcommand("cluster.status", "Topology and replication health (master)");
  auto master = std::make_shared<std::string>("127.0.0.1:9333");
  cs->add_option("--master", *master, "Master HTTP host:port")->capture_default_str();
  cs->callback([master, exit_code] { *exit_code = RunClusterStatus(*master); });
  auto* fsck = admin->add_subcommand("fsck", "Check (and -repair) the namespace of a stopped meta");
  auto ff = std::make_shared<FsckFlags>();
  fsck->add_option("--dir", ff->dir, "The meta server's -dir")->capture_default_str();
  fsck->add_flag("--repair", ff->repair, "Fix what can be fixed safely");
  fsck->callback([ff, exit_code] { *exit_code = RunFsck(*ff); });
}

}  // namespace needlefs::cli
