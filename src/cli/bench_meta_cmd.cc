// `needlefs bench meta`: metadata operations per second against a running
// `needlefs meta` over gRPC: creates, stats, listing a 10,000-entry
// directory, renames and unlinks, each with C concurrent threads. By default
// every thread has its own MetaClient (its own gRPC channel), so nothing is
// batched; with --clients K the threads share K clients, whose concurrent
// calls go out together in Batch calls (MetaClientOptions::max_in_flight),
// as a FUSE mount's or a gateway's threads do. With --inProcess DIR the
// same phases call a Namespace over RocksDB in DIR directly: the store's
// ceiling on this machine, without any RPC. Every thread works in its own
// directory, as mdtest's "unique directory" mode does.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <random>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "client/meta_client.h"
#include "metadata/kv_store.h"
#include "metadata/namespace.h"

namespace needlefs::cli {
namespace {

struct BenchMetaFlags {
  std::string server = "127.0.0.1:18888";
  uint64_t n = 20000;
  int concurrency = 16;
  int clients = 0;         // 0: one per thread
  int max_in_flight = -1;  // -1: MetaClientOptions' default
  std::string in_process;  // non-empty: no server, a Namespace in this directory
  uint64_t dir_size = 10000;
  bool keep = false;
};

void PrintOps(const char* phase, PhaseResult& r, int c, const char* unit = "ops") {
  std::printf("%-8s %8lu %s  %10.1f %s/s  p50 %7.3f ms  p99 %7.3f ms  errors %lu  (c=%d, %.2f s)\n",
              phase, static_cast<unsigned long>(r.ok), unit, r.ok / r.seconds, unit,
              r.Percentile(0.50), r.Percentile(0.99), static_cast<unsigned long>(r.errors), c,
              r.seconds);
  std::fflush(stdout);
}

/// The phases against `clients` (thread t uses clients[t]): MetaClient
/// over gRPC, or the Namespace itself (--inProcess), whose methods have the
/// same signatures. `where` names the target in messages.
template <typename Client>
int RunPhases(const BenchMetaFlags& f, const std::vector<Client*>& clients, int nclients,
              const std::string& where) {
  const int c = f.concurrency;
  const RequestContext root = RequestContext::Root();
  std::mt19937_64 rng(std::random_device{}());
  const std::string top_name = "bench-meta-" + std::to_string(rng() % 1000000000);
  auto top = clients[0]->Mkdir(root, kRootInode, top_name, 0755);
  if (!top.ok()) {
    std::fprintf(stderr, "needlefs bench meta: %s: %s\n", where.c_str(),
                 top.status().ToString().c_str());
    return 1;
  }
  std::vector<InodeId> dirs;
  for (int t = 0; t < c; ++t) {
    auto d = clients[0]->Mkdir(root, top->ino, "t" + std::to_string(t), 0755);
    if (!d.ok()) return 1;
    dirs.push_back(d->ino);
  }
  std::printf("needlefs bench meta: %lu files, c=%d, %d client(s), %s, directory /%s\n",
              static_cast<unsigned long>(f.n), c, nclients, where.c_str(), top_name.c_str());
  auto dir_of = [&](uint64_t i) { return dirs[i % static_cast<uint64_t>(c)]; };
  std::vector<InodeId> inodes(f.n);

  auto create = ParallelOps(c, f.n, [&](int t, uint64_t i) {
    auto r = clients[static_cast<size_t>(t)]->Create(root, dir_of(i), "f" + std::to_string(i), 0644,
                                                     true);
    if (r.ok()) inodes[i] = r->ino;
    return r.ok();
  });
  PrintOps("create", create, c);

  std::vector<uint64_t> order(f.n);
  for (uint64_t i = 0; i < f.n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto stat = ParallelOps(c, f.n, [&](int t, uint64_t i) {
    return clients[static_cast<size_t>(t)]->GetAttr(inodes[order[i]]).ok();
  });
  PrintOps("stat", stat, c);

  // A directory of dir_size entries, listed whole (pages of 1024, with attrs).
  auto big = clients[0]->Mkdir(root, top->ino, "big", 0755);
  if (!big.ok()) return 1;
  ParallelOps(c, f.dir_size, [&](int t, uint64_t i) {
    return clients[static_cast<size_t>(t)]
        ->Create(root, big->ino, "e" + std::to_string(i), 0644, true)
        .ok();
  });
  const uint64_t listings = std::max<uint64_t>(static_cast<uint64_t>(c), 16);
  auto readdir = ParallelOps(c, listings, [&](int t, uint64_t) {
    uint64_t cookie = 0, seen = 0;
    for (;;) {
      auto r = clients[static_cast<size_t>(t)]->ReadDir(root, big->ino, cookie, 1024, true);
      if (!r.ok()) return false;
      seen += r->entries.size();
      if (!r->entries.empty()) cookie = r->entries.back().cookie;
      if (r->eof) break;
    }
    return seen == f.dir_size;
  });
  PrintOps("readdir", readdir, c, "listings");
  std::printf("readdir  %.0f entries/s (plus, %lu-entry directory)\n",
              static_cast<double>(readdir.ok * f.dir_size) / readdir.seconds,
              static_cast<unsigned long>(f.dir_size));

  auto rename = ParallelOps(c, f.n, [&](int t, uint64_t i) {
    return clients[static_cast<size_t>(t)]
        ->Rename(root, dir_of(i), "f" + std::to_string(i), dir_of(i), "r" + std::to_string(i), 0)
        .ok();
  });
  PrintOps("rename", rename, c);
  auto unlink = ParallelOps(c, f.n, [&](int t, uint64_t i) {
    return clients[static_cast<size_t>(t)]->Unlink(root, dir_of(i), "r" + std::to_string(i)).ok();
  });
  PrintOps("unlink", unlink, c);
  // Clean up the big directory quietly.
  if (!f.keep)
    ParallelOps(c, f.dir_size, [&](int t, uint64_t i) {
      return clients[static_cast<size_t>(t)]->Unlink(root, big->ino, "e" + std::to_string(i)).ok();
    });
  return (create.errors || stat.errors || readdir.errors || rename.errors || unlink.errors) ? 1 : 0;
}

int RunBenchMeta(const BenchMetaFlags& f) {
  const int c = f.concurrency;
  if (c < 1 || f.n == 0) {
    std::fprintf(stderr, "needlefs bench meta: -n and -c must be positive\n");
    return 2;
  }
  if (!f.in_process.empty()) {
    // The store's own ceiling: the same phases straight on a Namespace over
    // RocksDB (WAL synced, as `needlefs meta` runs), no RPC at all.
    KvOptions ko;
    auto store = OpenRocksDbKvStore(f.in_process, ko);
    if (!store.ok()) {
      std::fprintf(stderr, "needlefs bench meta: %s\n", store.status().ToString().c_str());
      return 1;
    }
    auto ns = Namespace::Open(store->get(), NamespaceOptions{});
    if (!ns.ok()) {
      std::fprintf(stderr, "needlefs bench meta: %s\n", ns.status().ToString().c_str());
      return 1;
    }
    std::vector<Namespace*> threads(static_cast<size_t>(c), ns->get());
    return RunPhases(f, threads, 0, "in-process " + f.in_process);
  }
  const int nclients = f.clients > 0 ? std::min(f.clients, c) : c;
  MetaClientOptions options;
  options.timeout_ms = 30'000;
  if (f.max_in_flight >= 0) options.max_in_flight = f.max_in_flight;
  std::vector<std::unique_ptr<MetaClient>> owned;
  for (int k = 0; k < nclients; ++k) {
    auto cl = MetaClient::Create(f.server, options);
    if (!cl.ok()) {
      std::fprintf(stderr, "needlefs bench meta: %s\n", cl.status().ToString().c_str());
      return 1;
    }
    owned.push_back(std::move(cl).value());
  }
  std::vector<MetaClient*> clients;  // thread t's client
  for (int t = 0; t < c; ++t) clients.push_back(owned[static_cast<size_t>(t % nclients)].get());
  return RunPhases(f, clients, nclients, "server " + f.server);
}

}  // namespace

void AddBenchMetaCommand(CLI::App& bench, int* exit_code) {
  auto* cmd = bench.add_subcommand("meta", "Metadata operations per second against needlefs meta");
  auto f = std::make_shared<BenchMetaFlags>();
  cmd->add_option("--server", f->server, "Meta server gRPC host:port")->capture_default_str();
  cmd->add_option("-n", f->n, "Files to create, stat, rename and unlink")->capture_default_str();
  cmd->add_option("-c", f->concurrency, "Concurrent clients")->capture_default_str();
  cmd->add_option("--clients", f->clients,
                  "MetaClients the threads share (0: one each; fewer: calls are batched)")
      ->capture_default_str();
  cmd->add_option("--maxInFlight", f->max_in_flight,
                  "Calls each client keeps in flight before batching (0: never batch; "
                  "default: the client's)");
  cmd->add_option("--inProcess", f->in_process,
                  "Instead of a server: run on a Namespace over RocksDB in this directory, "
                  "no RPC (the store's own ceiling)");
  cmd->add_option("--dirSize", f->dir_size, "Entries of the directory that is listed")
      ->capture_default_str();
  cmd->add_flag("--keep", f->keep, "Leave the big directory in place (skip its cleanup)");
  cmd->callback([f, exit_code] { *exit_code = RunBenchMeta(*f); });
}

}  // namespace needlefs::cli
