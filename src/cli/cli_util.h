// Helpers shared by the subcommands: port conventions of the roles, and the
// load helpers of the client-side ones (bench, upload).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/http.h"
#include "common/status.h"

namespace needlefs::cli {

/// The gRPC port of a role whose HTTP port is `http_port` (ARCHITECTURE.md:
/// HTTP + 10000); 0 (any free port) stays 0.
uint16_t GrpcPortFor(int http_port);
/// Meta's HTTP port (/metrics, /status) for its gRPC port `grpc_port`:
/// gRPC - 10000, or 0 (any free port) when that is no port.
int MetaHttpPortFor(int grpc_port);

/// "1024", "1KiB", "4k", "16MiB", "1G" -> bytes (binary units).
bool ParseBytes(std::string s, uint64_t* out);

/// Ids of the writable volumes a volume server lists on /status.
/// Errors: kUnavailable (server unreachable or bad answer), kNotFound (none).
StatusOr<std::vector<uint32_t>> FetchWritableVolumes(const std::string& host, uint16_t port);

/// Latencies and counts of one ParallelRequests run.
struct PhaseResult {
  uint64_t ok = 0;
  uint64_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  /// The p-quantile (0..1) of the latencies, in ms (reorders the vector).
  double Percentile(double p);
};

/// Runs fn(thread, i) for i in [0, n) on `concurrency` threads (thread in
/// [0, concurrency)), timing each call. fn returns success.
PhaseResult ParallelOps(int concurrency, uint64_t n,
                        const std::function<bool(int thread, uint64_t i)>& fn);

/// Runs fn(client, i) for i in [0, n) on `concurrency` threads, each with its
/// own keep-alive HttpClient to host:port. fn returns success.
PhaseResult ParallelRequests(const std::string& host, uint16_t port, int concurrency, uint64_t n,
                             const std::function<bool(HttpClient&, uint64_t)>& fn);

}  // namespace needlefs::cli
