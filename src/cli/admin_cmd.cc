// `needlefs admin <command>`: operator commands. The volume.* commands act
// on every volume server the master knows (-master host:port) or on one
// (-server host:grpcPort); fsck opens a stopped meta server's store.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/http.h"
#include "metadata/fsck.h"
#include "metadata/kv_store.h"
#include "objstore/superblock.h"
#include "volume_rpc/volume_admin_client.h"

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
  for (auto& r : j["NeedsRepair"]) {
    std::printf("needs repair: volume %u (a replicated write failed; reconciling)\n",
                r.value("volumeId", 0u));
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
  std::string server;  // one volume server's gRPC host:port; "" = every server via the master
  std::string master = "127.0.0.1:9333";
  uint32_t volume_id = 0;
  std::string collection;
  std::string replication = "000";
  std::string ttl;
  double garbage_threshold = 0.3;
  bool readonly = false;
  bool writable = false;
  bool dry_run = false;  // volume.fix.replication -n, volume.check -n
  bool force = false;    // volume.balance -force: make the moves
};

double MiB(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

void ProgressBar(const std::string& server, uint32_t vid, uint64_t done, uint64_t total) {
  const int width = 30;
  int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r  %s volume %u [%.*s%*s] %3d%% (%lu/%lu needles)", server.c_str(), vid,
               filled, "##############################", width - filled, "",
               total ? static_cast<int>(100 * done / total) : 100, static_cast<unsigned long>(done),
               static_cast<unsigned long>(total));
  std::fflush(stderr);
}

/// One volume server the command acts on.
struct Target {
  std::string url;              ///< its HTTP "ip:port" (the gRPC address with -server)
  std::string label;            ///< "ip:port (dc/rack)" or the gRPC address given
  std::string grpc;             ///< its gRPC admin "host:port"
  std::vector<VolumeId> holds;  ///< volumes the master says it holds
};

/// The master's /vol/status as JSON. Errors: kUnavailable.
StatusOr<nlohmann::json> MasterVolumeStatus(const std::string& master) {
  std::string host;
  uint16_t port;
  NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(master, &host, &port));
  HttpClient c(host, port, 10'000);
  NEEDLEFS_ASSIGN_OR_RETURN(auto r, c.Request("GET", "/vol/status"));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j["Nodes"].is_array()) {
    return Status::Unavailable("master " + master + " answered " + std::to_string(r.status) +
                               " to /vol/status");
  }
  return j;
}

/// Every volume server the master knows (none when it knows none).
StatusOr<std::vector<Target>> MasterTargets(const std::string& master) {
  NEEDLEFS_ASSIGN_OR_RETURN(nlohmann::json j, MasterVolumeStatus(master));
  std::vector<Target> out;
  for (const auto& n : j["Nodes"]) {
    std::string url = n.value("url", "");
    Target t;
    t.url = url;
    t.label = url + " (" + n.value("dataCenter", "") + "/" + n.value("rack", "") + ")";
    t.grpc = url.substr(0, url.rfind(':')) + ":" + std::to_string(n.value("grpcPort", 0));
    for (const auto& v : n["volumes"]) t.holds.push_back(VolumeId(v.value("id", 0u)));
    out.push_back(std::move(t));
  }
  return out;
}

/// -server names one volume server; otherwise every server the master knows
/// (kUnavailable when it knows none).
StatusOr<std::vector<Target>> ResolveTargets(const AdminFlags& f) {
  if (!f.server.empty()) return std::vector<Target>{{f.server, f.server, f.server, {}}};
  NEEDLEFS_ASSIGN_OR_RETURN(std::vector<Target> out, MasterTargets(f.master));
  if (out.empty()) return Status::Unavailable("the master knows no volume server");
  return out;
}

int RunList(const std::vector<Target>& targets) {
  size_t total = 0;
  for (const auto& t : targets) {
    auto client = VolumeAdminClient::Create(t.grpc);
    if (!client.ok()) return Fail("volume.list", client.status());
    auto vols = (*client)->VolumeStatus(VolumeId(0));
    if (!vols.ok()) return Fail("volume.list", vols.status().WithContext(t.label));
    std::printf("volume server %s\n", t.label.c_str());
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
    total += vols->size();
  }
  std::printf("%zu volume replicas on %zu servers\n", total, targets.size());
  return 0;
}

int RunVacuum(const std::vector<Target>& targets, const AdminFlags& f) {
  uint64_t before = 0, after = 0;
  int vacuumed = 0, skipped = 0, failed = 0;
  for (const auto& t : targets) {
    auto client = VolumeAdminClient::Create(t.grpc);
    if (!client.ok()) return Fail("volume.vacuum", client.status());
    VolumeAdminClient& c = **client;
    std::vector<VolumeId> ids;
    if (f.volume_id) {
      ids.push_back(VolumeId(f.volume_id));
    } else {
      auto vols = c.VolumeStatus(VolumeId(0));
      if (!vols.ok()) return Fail("volume.vacuum", vols.status().WithContext(t.label));
      for (const auto& v : *vols) ids.push_back(v.id);
    }
    for (VolumeId id : ids) {
      if (f.volume_id && f.server.empty() &&
          std::find(t.holds.begin(), t.holds.end(), id) == t.holds.end()) {
        continue;  // the master says this server has no replica of it
      }
      auto r = c.Compact(id, f.garbage_threshold, [&](uint64_t done, uint64_t total) {
        ProgressBar(t.label, id.value, done, total);
      });
      if (!r.ok()) {
        std::fprintf(stderr, "\n  %s volume %u: %s\n", t.label.c_str(), id.value,
                     r.status().ToString().c_str());
        ++failed;
        continue;
      }
      before += r->bytes_before;
      after += r->bytes_after;
      if (r->skipped) {
        ++skipped;
        std::fprintf(stderr, "  %s volume %u: garbage below %.0f%%, skipped\n", t.label.c_str(),
                     id.value, f.garbage_threshold * 100);
      } else {
        ++vacuumed;
        std::fprintf(stderr, "\n  %s volume %u: %.1f MiB -> %.1f MiB\n", t.label.c_str(), id.value,
                     MiB(r->bytes_before), MiB(r->bytes_after));
      }
    }
  }
  std::printf("vacuum: %d vacuumed, %d skipped, %d failed; %.1f MiB -> %.1f MiB (%.1f MiB freed)\n",
              vacuumed, skipped, failed, MiB(before), MiB(after), MiB(before - after));
  return failed ? 1 : 0;
}

/// The replicas of every volume as their servers report them.
struct Replica {
  std::string server;  ///< HTTP url
  std::string grpc;
  VolumeInfo info;
};
using ReplicaMap = std::map<uint32_t, std::vector<Replica>>;

StatusOr<ReplicaMap> GatherReplicas(const std::vector<Target>& targets) {
  ReplicaMap replicas;
  size_t asked = 0;
  for (const auto& t : targets) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto client, VolumeAdminClient::Create(t.grpc));
    auto vols = client->VolumeStatus(VolumeId(0));
    if (!vols.ok()) return vols.status().WithContext(t.url);
    for (const auto& v : *vols) replicas[v.id.value].push_back({t.url, t.grpc, v});
    std::fprintf(stderr, "\r  asked %zu/%zu volume servers", ++asked, targets.size());
  }
  std::fprintf(stderr, "\n");
  return replicas;
}

/// Whether the replicas of one volume report different live contents.
bool ReplicasDiffer(const std::vector<Replica>& reps) {
  for (const auto& r : reps) {
    if (r.info.needle_count != reps[0].info.needle_count ||
        r.info.live_bytes != reps[0].info.live_bytes) {
      return true;
    }
  }
  return false;
}

size_t WantedCopies(const std::vector<Replica>& reps) {
  auto rp = ReplicaPlacement::Parse(reps[0].info.replication);
  return rp.ok() ? static_cast<size_t>(rp->CopyCount()) : 1;
}

/// `volume.check`: lists volumes with missing replicas, then has every
/// replica of each replicated volume pull what it lacks from the others
/// (anti-entropy, objstore/anti_entropy.h) and reports what was pulled and
/// what still differs. With -n it only compares the replicas' counters.
/// Exit 1 when a volume is under-replicated or its replicas still differ.
int RunCheck(const AdminFlags& f) {
  const char* cmd = "volume.check";
  auto targets = MasterTargets(f.master);
  if (!targets.ok()) return Fail(cmd, targets.status());
  auto replicas = GatherReplicas(*targets);
  if (!replicas.ok()) return Fail(cmd, replicas.status());
  int problems = 0, reconciled = 0;
  uint64_t pulled = 0, pulled_bytes = 0;
  std::vector<uint32_t> compare;
  for (const auto& [vid, reps] : *replicas) {
    if (f.volume_id && vid != f.volume_id) continue;
    if (reps.size() < WantedCopies(reps)) {
      std::printf("volume %u: %zu of %zu replicas (on", vid, reps.size(), WantedCopies(reps));
      for (const auto& r : reps) std::printf(" %s", r.server.c_str());
      std::printf(")\n");
      ++problems;
    }
    if (reps.size() > 1) compare.push_back(vid);
  }
  for (size_t i = 0; i < compare.size() && !f.dry_run; ++i) {
    const uint32_t vid = compare[i];
    std::fprintf(stderr, "\r  [%zu/%zu] reconciling volume %u", i + 1, compare.size(), vid);
    SyncVolumeResult sum;
    for (const auto& r : (*replicas)[vid]) {
      if (r.info.read_only) continue;  // takes no writes, so no pulls either
      auto client = VolumeAdminClient::Create(r.grpc);
      if (!client.ok()) return Fail(cmd, client.status());
      auto res = (*client)->SyncVolume(VolumeId(vid));
      if (!res.ok()) {
        std::printf("\nvolume %u: %s could not pull from the other replicas: %s\n", vid,
                    r.server.c_str(), res.status().ToString().c_str());
        ++sum.errors;
        continue;
      }
      sum.needles += res->needles;
      sum.tombstones += res->tombstones;
      sum.bytes += res->bytes;
      sum.errors += res->errors;
    }
    if (sum.needles + sum.tombstones > 0) {
      std::printf(
          "\nvolume %u: reconciled: %lu needles and %lu deletes copied between replicas "
          "(%.1f KiB)\n",
          vid, static_cast<unsigned long>(sum.needles), static_cast<unsigned long>(sum.tombstones),
          static_cast<double>(sum.bytes) / 1024);
      ++reconciled;
      pulled += sum.needles + sum.tombstones;
      pulled_bytes += sum.bytes;
    }
    if (sum.errors) ++problems;
  }
  if (!compare.empty() && !f.dry_run) {
    std::fprintf(stderr, "\n");
    replicas = GatherReplicas(*targets);  // what the replicas hold now
    if (!replicas.ok()) return Fail(cmd, replicas.status());
  }
  for (uint32_t vid : compare) {
    const auto& reps = (*replicas)[vid];
    if (!ReplicasDiffer(reps)) continue;
    std::printf("volume %u: replicas differ:", vid);
    for (const auto& r : reps) {
      std::printf(" %s has %lu needles (%lu bytes);", r.server.c_str(),
                  static_cast<unsigned long>(r.info.needle_count),
                  static_cast<unsigned long>(r.info.live_bytes));
    }
    std::printf("\n");
    ++problems;
  }
  std::printf(
      "volume.check: %zu volumes on %zu servers, %d reconciled (%lu records, %.1f KiB "
      "copied), %d problems\n",
      replicas->size(), targets->size(), reconciled, static_cast<unsigned long>(pulled),
      static_cast<double>(pulled_bytes) / 1024, problems);
  return problems ? 1 : 0;
}

/// A JSON request to the master. Errors: kUnavailable, or the master's
/// {"error"} message with the code of its HTTP status.
StatusOr<nlohmann::json> MasterJson(const std::string& master, const std::string& method,
                                    const std::string& target) {
  std::string host;
  uint16_t port;
  NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(master, &host, &port));
  HttpClient c(host, port, 24 * 3600 * 1000);  // a copy takes as long as the volume needs
  NEEDLEFS_ASSIGN_OR_RETURN(auto r, c.Request(method, target));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object()) {
    return Status::Unavailable("master " + master + " answered " + std::to_string(r.status));
  }
  if (r.status != 200) {
    const std::string msg = j.value("error", "HTTP " + std::to_string(r.status));
    return r.status == 404 ? Status::NotFound(msg) : Status::FailedPrecondition(msg);
  }
  return j;
}

/// `admin volume.fix.replication`: every under-replicated volume (or
/// -volumeId) gets its missing replicas; -n only shows the plan.
int RunFixReplication(const AdminFlags& f) {
  const char* cmd = "volume.fix.replication";
  auto plan = MasterJson(f.master, "GET", "/vol/fix_replication");
  if (!plan.ok()) return Fail(cmd, plan.status());
  std::vector<nlohmann::json> todo;
  for (const auto& v : (*plan)["volumes"]) {
    if (f.volume_id == 0 || v.value("volumeId", 0u) == f.volume_id) todo.push_back(v);
  }
  if (todo.empty()) {
    std::printf("volume.fix.replication: every volume has all its replicas\n");
    return 0;
  }
  int fixed = 0, failed = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < todo.size(); ++i) {
    const auto& v = todo[i];
    const uint32_t id = v.value("volumeId", 0u);
    std::printf("[%zu/%zu] volume %u (replication %s): %d of %d replicas", i + 1, todo.size(), id,
                v.value("replication", "").c_str(), v.value("replicas", 0), v.value("copies", 0));
    if (f.dry_run) {
      if (v.contains("target")) {
        std::printf(", would copy to %s\n", v.value("target", "").c_str());
      } else {
        std::printf(", cannot be fixed: %s\n", v.value("error", "").c_str());
        ++failed;
      }
      continue;
    }
    std::printf(", copying...");
    std::fflush(stdout);
    auto r = MasterJson(f.master, "POST", "/vol/fix_replication?volumeId=" + std::to_string(id));
    if (!r.ok()) {
      std::printf(" failed: %s\n", std::string(r.status().message()).c_str());
      ++failed;
      continue;
    }
    for (const auto& c : (*r)["copies"]) {
      std::printf(" %s -> %s (%.1f MiB)", c.value("source", "").c_str(),
                  c.value("target", "").c_str(), MiB(c.value("bytes", uint64_t{0})));
      bytes += c.value("bytes", uint64_t{0});
    }
    std::printf(" done\n");
    ++fixed;
  }
  if (f.dry_run) {
    std::printf("volume.fix.replication -n: %zu volumes under-replicated, %d cannot be fixed\n",
                todo.size(), failed);
  } else {
    std::printf("volume.fix.replication: %d volumes fixed, %d failed, %.1f MiB copied\n", fixed,
                failed, MiB(bytes));
  }
  return failed ? 1 : 0;
}

/// `admin volume.balance`: shows the moves that even out volumes per server;
/// -force makes them.
int RunBalance(const AdminFlags& f) {
  const char* cmd = "volume.balance";
  auto plan = MasterJson(f.master, "GET", "/vol/balance");
  if (!plan.ok()) return Fail(cmd, plan.status());
  const auto& moves = (*plan)["moves"];
  if (moves.empty()) {
    std::printf("volume.balance: balanced, nothing to move\n");
    return 0;
  }
  int moved = 0, failed = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < moves.size(); ++i) {
    const auto& m = moves[i];
    const uint32_t id = m.value("volumeId", 0u);
    const std::string from = m.value("from", ""), to = m.value("to", "");
    std::printf("[%zu/%zu] volume %u: %s -> %s", i + 1, moves.size(), id, from.c_str(), to.c_str());
    if (!f.force) {
      std::printf(" (planned)\n");
      continue;
    }
    std::fflush(stdout);
    auto r = MasterJson(f.master, "POST",
                        "/vol/move?volumeId=" + std::to_string(id) +
                            "&from=" + PercentEncode(from) + "&to=" + PercentEncode(to));
    if (!r.ok()) {
      std::printf(" failed: %s\n", std::string(r.status().message()).c_str());
      ++failed;
      continue;
    }
    bytes += r->value("bytes", uint64_t{0});
    std::printf(" moved (%.1f MiB)\n", MiB(r->value("bytes", uint64_t{0})));
    ++moved;
  }
  if (!f.force) {
    std::printf("volume.balance: %zu moves planned; run with -force to make them\n", moves.size());
    return 0;
  }
  std::printf("volume.balance: %d volumes moved, %d failed, %.1f MiB copied\n", moved, failed,
              MiB(bytes));
  return failed ? 1 : 0;
}

int RunAdmin(const std::string& cmd, const AdminFlags& f) {
  if (cmd == "volume.check") return RunCheck(f);
  if (cmd == "volume.fix.replication") return RunFixReplication(f);
  if (cmd == "volume.balance") return RunBalance(f);
  auto targets = ResolveTargets(f);
  if (!targets.ok()) return Fail(cmd.c_str(), targets.status());
  if (cmd == "volume.list") return RunList(*targets);
  if (cmd == "volume.vacuum") return RunVacuum(*targets, f);
  if (f.volume_id == 0) {
    return Fail(cmd.c_str(), Status::InvalidArgument("-volumeId is required"));
  }
  VolumeId id(f.volume_id);
  if (cmd == "volume.allocate" && f.server.empty()) {
    return Fail(cmd.c_str(),
                Status::InvalidArgument("-server is required (with a master, volumes grow by "
                                        "themselves or through /vol/grow)"));
  }
  if (cmd == "volume.mark" && f.readonly == f.writable) {
    return Fail(cmd.c_str(), Status::InvalidArgument("give exactly one of -readonly, -writable"));
  }
  int done = 0;
  for (const auto& t : *targets) {
    if (f.server.empty() && std::find(t.holds.begin(), t.holds.end(), id) == t.holds.end()) {
      continue;
    }
    auto client = VolumeAdminClient::Create(t.grpc);
    if (!client.ok()) return Fail(cmd.c_str(), client.status());
    VolumeAdminClient& c = **client;
    Status s;
    if (cmd == "volume.allocate") {
      s = c.AllocateVolume(id, f.collection, f.replication, f.ttl);
    } else if (cmd == "volume.mark") {
      s = c.MarkReadonly(id, f.readonly);
    } else if (cmd == "volume.delete") {
      s = c.DeleteVolume(id);
    }
    if (!s.ok()) return Fail(cmd.c_str(), s.WithContext(t.label));
    std::printf("%s volume %u on %s: ok\n", cmd.c_str(), id.value, t.label.c_str());
    ++done;
  }
  if (done == 0) {
    return Fail(cmd.c_str(),
                Status::NotFound("no volume server holds volume " + std::to_string(id.value)));
  }
  return 0;
}

}  // namespace

void AddAdminCommand(CLI::App& app, int* exit_code) {
  auto* admin = app.add_subcommand("admin", "Operator commands: the cluster and the namespace");
  admin->require_subcommand(1);
  auto f = std::make_shared<AdminFlags>();
  struct Cmd {
    const char* name;
    const char* help;
  };
  for (Cmd c : {Cmd{"volume.list", "List the volumes and their garbage"},
                Cmd{"volume.check",
                    "Compare the replicas of every volume and reconcile them (via the master)"},
                Cmd{"volume.fix.replication",
                    "Copy the missing replicas of under-replicated volumes (via the master)"},
                Cmd{"volume.balance",
                    "Even out the volumes per server without breaking placement (-force moves)"},
                Cmd{"volume.allocate", "Create a volume"},
                Cmd{"volume.vacuum", "Compact volumes above a garbage threshold"},
                Cmd{"volume.mark", "Mark a volume -readonly or -writable"},
                Cmd{"volume.delete", "Delete a volume and its files"}}) {
    auto* sub = admin->add_subcommand(c.name, c.help);
    std::string name = c.name;
    sub->add_option("--master", f->master, "Master HTTP host:port (acts on every volume server)")
        ->capture_default_str();
    const bool master_only =
        name == "volume.check" || name == "volume.fix.replication" || name == "volume.balance";
    if (!master_only) {
      sub->add_option("--server", f->server,
                      "Only this volume server (its gRPC host:port), no master needed");
    }
    if (name != "volume.list" && name != "volume.balance") {
      sub->add_option(
          "--volumeId", f->volume_id,
          name == "volume.vacuum" || name == "volume.check" || name == "volume.fix.replication"
              ? "Only this volume (default: all)"
              : "Volume id");
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
    if (name == "volume.fix.replication") {
      sub->add_flag("-n", f->dry_run, "Only show what would be copied where");
    }
    if (name == "volume.check") {
      sub->add_flag("-n", f->dry_run, "Only compare the replicas' counters, copy nothing");
    }
    if (name == "volume.balance") {
      sub->add_flag("--force", f->force, "Make the moves (default: only show them)");
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
  AddS3AdminCommands(admin, exit_code);
}

}  // namespace needlefs::cli
