#include "cli/cli_util.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

namespace needlefs::cli {

uint16_t GrpcPortFor(int http_port) {
  return static_cast<uint16_t>(http_port ? http_port + 10000 : 0);
}

int MetaHttpPortFor(int grpc_port) { return grpc_port > 10000 ? grpc_port - 10000 : 0; }

bool ParseBytes(std::string s, uint64_t* out) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 15) return false;
  uint64_t v = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "b")
    *out = v;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    *out = v << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    *out = v << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    *out = v << 30;
  else
    return false;
  return true;
}

StatusOr<std::vector<uint32_t>> FetchWritableVolumes(const std::string& host, uint16_t port) {
  HttpClient probe(host, port);
  auto st = probe.Request("GET", "/status");
  if (!st.ok()) return st.status();
  if (st->status != 200)
    return Status::Unavailable("/status answered " + std::to_string(st->status));
  auto j = nlohmann::json::parse(st->body, nullptr, false);
  if (!j.is_object() || !j["volumes"].is_array()) return Status::Unavailable("/status is not JSON");
  std::vector<uint32_t> vols;
  for (auto& v : j["volumes"]) {
    if (!v.value("read_only", true)) vols.push_back(v.value("id", 0u));
  }
  if (vols.empty()) return Status::NotFound("the server has no writable volume");
  return vols;
}

double PhaseResult::Percentile(double p) {
  if (latencies_ms.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(latencies_ms.size() - 1));
  std::nth_element(latencies_ms.begin(), latencies_ms.begin() + static_cast<long>(k),
                   latencies_ms.end());
  return latencies_ms[k];
}

PhaseResult ParallelOps(int concurrency, uint64_t n,
                        const std::function<bool(int thread, uint64_t i)>& fn) {
  std::atomic<uint64_t> next{0}, ok{0}, errors{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(concurrency));
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i; (i = next.fetch_add(1)) < n;) {
        auto t0 = std::chrono::steady_clock::now();
        bool good = fn(t, i);
        auto t1 = std::chrono::steady_clock::now();
        lat[static_cast<size_t>(t)].push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
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

PhaseResult ParallelRequests(const std::string& host, uint16_t port, int concurrency, uint64_t n,
                             const std::function<bool(HttpClient&, uint64_t)>& fn) {
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int t = 0; t < concurrency; ++t) clients.push_back(std::make_unique<HttpClient>(host, port));
  return ParallelOps(concurrency, n,
                     [&](int t, uint64_t i) { return fn(*clients[static_cast<size_t>(t)], i); });
}

}  // namespace needlefs::cli
