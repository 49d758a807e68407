// `needlefs bench`: SeaweedFS's `weed benchmark` for one volume server.
// Writes N blobs of S bytes with C keep-alive connections, then reads them
// back in random order; prints req/s, MiB/s and p50/p99 latency per phase.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "client/blob_client.h"
#include "common/file_id.h"
#include "common/http.h"

namespace needlefs::cli {
namespace {

struct BenchFlags {
  std::string server = "127.0.0.1:8080";
  uint64_t n = 10000;
  std::string size = "1KiB";
  int concurrency = 16;
  bool skip_read = false;
  bool drop_caches = false;
  std::string master;  ///< when set: assign through the master (BlobClient)
  std::string replication;
};

/// Writes back dirty pages and drops the page cache (root only), so the read
/// phase measures the disk rather than memory. Returns whether it worked.
bool DropPageCache() {
  ::sync();
  std::FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w");
  if (!f) return false;
  bool ok = std::fputs("3", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

void Print(const char* phase, PhaseResult& r, uint64_t size, int c) {
  double mib = static_cast<double>(r.ok * size) / (1 << 20);
  std::printf(
      "%-6s %8lu requests  %9.1f req/s  %8.1f MiB/s  p50 %7.3f ms  p99 %7.3f ms  "
      "errors %lu  (c=%d, %.2f s)\n",
      phase, static_cast<unsigned long>(r.ok), r.ok / r.seconds, mib / r.seconds,
      r.Percentile(0.50), r.Percentile(0.99), static_cast<unsigned long>(r.errors), c, r.seconds);
  std::fflush(stdout);
}

/// `bench -master`: every write is an assign + upload through the blob
/// client, every read a lookup (cached) + GET with replica fallback.
int RunBenchMaster(const BenchFlags& f, uint64_t size) {
  BlobClientOptions o;
  o.master = f.master;
  BlobClient client(o);
  std::mt19937_64 rng(std::random_device{}());
  std::string payload(size, '\0');
  for (auto& ch : payload) ch = static_cast<char>(rng());
  std::printf("needlefs bench: %lu blobs of %lu bytes, c=%d, master %s, replication %s\n",
              static_cast<unsigned long>(f.n), static_cast<unsigned long>(size), f.concurrency,
              f.master.c_str(), f.replication.empty() ? "(default)" : f.replication.c_str());
  std::vector<std::optional<FileId>> fids(f.n);  // unset: the upload failed
  UploadRequest up;
  up.replication = f.replication;
  std::mutex err_mu;
  std::string first_error;
  auto w = ParallelOps(f.concurrency, f.n, [&](int, uint64_t i) {
    auto fid = client.Upload(payload, up);
    if (!fid.ok()) {
      std::lock_guard<std::mutex> l(err_mu);
      if (first_error.empty()) first_error = fid.status().ToString();
      return false;
    }
    fids[i] = *fid;
    return true;
  });
  Print("write", w, size, f.concurrency);
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  if (f.skip_read) return w.errors ? 1 : 0;
  std::vector<uint64_t> order(f.n);
  for (uint64_t i = 0; i < f.n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto r = ParallelOps(f.concurrency, f.n, [&](int, uint64_t i) {
    if (!fids[order[i]]) return false;
    auto data = client.Read(*fids[order[i]]);
    return data.ok() && data->size() == size;
  });
  Print("read", r, size, f.concurrency);
  return (w.errors || r.errors) ? 1 : 0;
}

int RunBench(const BenchFlags& f) {
  std::string host;
  uint16_t port;
  if (Status s = SplitHostPort(f.server, &host, &port); !s.ok()) {
    std::fprintf(stderr, "needlefs bench: %s\n", s.ToString().c_str());
    return 2;
  }
  uint64_t size;
  if (!ParseBytes(f.size, &size)) {
    std::fprintf(stderr, "needlefs bench: bad size '%s'\n", f.size.c_str());
    return 2;
  }
  if (f.concurrency < 1 || f.n == 0) {
    std::fprintf(stderr, "needlefs bench: -n and -c must be positive\n");
    return 2;
  }
  if (!f.master.empty()) return RunBenchMaster(f, size);
  // Writable volumes from the server's /status (until a master assigns).
  auto vols_or = FetchWritableVolumes(host, port);
  if (!vols_or.ok()) {
    std::fprintf(stderr, "needlefs bench: %s: %s (start it with -allocate N)\n", f.server.c_str(),
                 vols_or.status().ToString().c_str());
    return 1;
  }
  const std::vector<uint32_t>& vols = *vols_or;
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t key_base = (rng() & 0xFFFFFFull) << 32;
  std::vector<FileId> fids(f.n);
  for (uint64_t i = 0; i < f.n; ++i) {
    fids[i] = FileId{VolumeId(vols[i % vols.size()]), NeedleKey(key_base + i),
                     Cookie(static_cast<uint32_t>(rng()))};
  }
  std::string payload(size, '\0');
  for (auto& ch : payload) ch = static_cast<char>(rng());  // incompressible

  std::printf("needlefs bench: %lu blobs of %lu bytes, c=%d, server %s, %zu volumes\n",
              static_cast<unsigned long>(f.n), static_cast<unsigned long>(size), f.concurrency,
              f.server.c_str(), vols.size());
  HttpHeaders headers{{"Content-Type", "application/octet-stream"}};
  auto w = ParallelRequests(host, port, f.concurrency, f.n, [&](HttpClient& c, uint64_t i) {
    auto r = c.Request("PUT", "/" + fids[i].ToString(), payload, headers);
    return r.ok() && r->status == 201;
  });
  Print("write", w, size, f.concurrency);
  if (f.skip_read) return w.errors ? 1 : 0;

  if (f.drop_caches) {
    std::printf("page cache %s before the read phase\n",
                DropPageCache() ? "dropped" : "NOT dropped (needs root)");
  }
  std::vector<uint64_t> order(f.n);
  for (uint64_t i = 0; i < f.n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto r = ParallelRequests(host, port, f.concurrency, f.n, [&](HttpClient& c, uint64_t i) {
    auto resp = c.Request("GET", "/" + fids[order[i]].ToString());
    return resp.ok() && resp->status == 200 && resp->body.size() == size;
  });
  Print("read", r, size, f.concurrency);
  return (w.errors || r.errors) ? 1 : 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto* cmd =
      app.add_subcommand("bench", "Load-test a volume server: write N blobs, read them back");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--server", f->server, "Volume server host:port")->capture_default_str();
  cmd->add_option("-n", f->n, "Number of blobs")->capture_default_str();
  cmd->add_option("--size", f->size, "Blob size (e.g. 1KiB, 16MiB)")->capture_default_str();
  cmd->add_option("-c", f->concurrency, "Concurrent keep-alive connections")->capture_default_str();
  cmd->add_flag("--skipRead", f->skip_read, "Only run the write phase");
  cmd->add_option("--master", f->master,
                  "Master host:port: assign every blob through it (instead of -server)");
  cmd->add_option("--replication", f->replication, "Replica placement for -master assigns");
  cmd->add_flag("--dropCaches", f->drop_caches,
                "Drop the page cache between the phases (root; server on this machine)");
  AddBenchMetaCommand(*cmd, exit_code);
  cmd->require_subcommand(0, 1);
  cmd->callback([cmd, f, exit_code] {
    if (cmd->got_subcommand("meta")) return;  // `bench meta` ran instead
    *exit_code = RunBench(*f);
  });
}

}  // namespace needlefs::cli
