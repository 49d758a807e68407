// `needlefs bench`: SeaweedFS's `weed benchmark` for one volume server.
// Writes N blobs of S bytes with C keep-alive connections, then reads them
// back in random order; prints req/s, MiB/s and p50/p99 latency per phase.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "common/http.h"
#include "objstore/file_id.h"

namespace needlefs::cli {
namespace {

struct BenchFlags {
  std::string server = "127.0.0.1:8080";
  uint64_t n = 10000;
  std::string size = "1KiB";
  int concurrency = 16;
  bool skip_read = false;
};

/// "1024", "1KiB", "4k", "16MiB", "1G" -> bytes (binary units).
bool ParseBytes(std::string s, uint64_t* out) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return false;
  uint64_t v = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "b") *out = v;
  else if (unit == "k" || unit == "kb" || unit == "kib") *out = v << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") *out = v << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") *out = v << 30;
  else return false;
  return true;
}

struct PhaseResult {
  uint64_t ok = 0, errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

void Print(const char* phase, PhaseResult& r, uint64_t size, int c) {
  double mib = static_cast<double>(r.ok * size) / (1 << 20);
  std::printf("%-6s %8lu requests  %9.1f req/s  %8.1f MiB/s  p50 %7.3f ms  p99 %7.3f ms  "
              "errors %lu  (c=%d, %.2f s)\n",
              phase, static_cast<unsigned long>(r.ok), r.ok / r.seconds, mib / r.seconds,
              Percentile(r.latencies_ms, 0.50), Percentile(r.latencies_ms, 0.99),
              static_cast<unsigned long>(r.errors), c, r.seconds);
  std::fflush(stdout);
}

template <typename Fn>
PhaseResult RunPhase(const std::string& host, uint16_t port, int c, uint64_t n, Fn fn) {
  std::atomic<uint64_t> next{0}, ok{0}, errors{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(c));
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < c; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client(host, port);
      for (uint64_t i; (i = next.fetch_add(1)) < n;) {
        auto t0 = std::chrono::steady_clock::now();
        bool good = fn(client, i);
        auto t1 = std::chrono::steady_clock::now();
        lat[static_cast<size_t>(t)].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        (good ? ok : errors)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  PhaseResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.ok = ok;
  r.errors = errors;
  for (auto& v : lat) r.latencies_ms.insert(r.latencies_ms.end(), v.begin(), v.end());
  return r;
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
  // Writable volumes from the server's /status (until a master assigns).
  HttpClient probe(host, port);
  auto st = probe.Request("GET", "/status");
  if (!st.ok() || st->status != 200) {
    std::fprintf(stderr, "needlefs bench: cannot read http://%s/status: %s\n", f.server.c_str(),
                 st.ok() ? std::to_string(st->status).c_str() : st.status().ToString().c_str());
    return 1;
  }
  std::vector<uint32_t> vols;
  auto j = nlohmann::json::parse(st->body, nullptr, false);
  if (j.is_object() && j["volumes"].is_array()) {
    for (auto& v : j["volumes"]) {
      if (!v.value("read_only", true)) vols.push_back(v.value("id", 0u));
    }
  }
  if (vols.empty()) {
    std::fprintf(stderr, "needlefs bench: the server has no writable volume (start it with -allocate N)\n");
    return 1;
  }
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
  auto w = RunPhase(host, port, f.concurrency, f.n, [&](HttpClient& c, uint64_t i) {
    auto r = c.Request("PUT", "/" + fids[i].ToString(), payload, headers);
    return r.ok() && r->status == 201;
  });
  Print("write", w, size, f.concurrency);
  if (f.skip_read) return w.errors ? 1 : 0;

  std::vector<uint64_t> order(f.n);
  for (uint64_t i = 0; i < f.n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto r = RunPhase(host, port, f.concurrency, f.n, [&](HttpClient& c, uint64_t i) {
    auto resp = c.Request("GET", "/" + fids[order[i]].ToString());
    return resp.ok() && resp->status == 200 && resp->body.size() == size;
  });
  Print("read", r, size, f.concurrency);
  return (w.errors || r.errors) ? 1 : 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("bench", "Load-test a volume server: write N blobs, read them back");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--server", f->server, "Volume server host:port")->capture_default_str();
  cmd->add_option("-n", f->n, "Number of blobs")->capture_default_str();
  cmd->add_option("--size", f->size, "Blob size (e.g. 1KiB, 16MiB)")->capture_default_str();
  cmd->add_option("-c", f->concurrency, "Concurrent keep-alive connections")->capture_default_str();
  cmd->add_flag("--skipRead", f->skip_read, "Only run the write phase");
  cmd->callback([f, exit_code] { *exit_code = RunBench(*f); });
}

}  // namespace needlefs::cli
