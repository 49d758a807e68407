// The meta role as one unit (`needlefs meta`, and embedded in `needlefs
// server`): the namespace on RocksDB behind the MetaService gRPC server with
// its change stream, the garbage collector that deletes the blobs of removed
// data, the expiry of crashed clients' sessions, and a small HTTP face with
// /metrics (Prometheus text) and /status (JSON).
//
// Thread-safe; Stop() is idempotent and called by the destructor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/file_id.h"
#include "common/status.h"

namespace needlefs {

struct MetaServerOptions {
  /// Data directory; the namespace lives in DIR/meta.rocksdb. Required.
  std::string dir;
  std::string ip = "127.0.0.1";
  uint16_t grpc_port = 18888;  ///< 0 = any free port
  /// HTTP port of /metrics and /status; 0 = any free port, -1 = none.
  int http_port = 8888;
  /// Sync the RocksDB log on every commit (false only for tests/benchmarks).
  bool sync = true;
  /// Most gRPC calls served at once (each Subscribe stream holds one).
  int max_threads = 128;
  /// Port of the frame RPC listener (MetaGrpcOptions::frame_port): 0 = the
  /// gRPC port + 100 (or any free one), -1 = none (gRPC only).
  int frame_port = 0;
  /// Data of small files kept in meta with the inode, bytes: a file whose
  /// bytes a client writes in one piece of at most this size is committed
  /// with them (one round trip, no blob) and read back with its open. 0:
  /// never. Default: 4096 (docs/benchmarks.md weighs it).
  uint64_t max_inline_bytes = 4096;
  /// Deletes one blob of removed data (OK when already gone). Empty = no
  /// garbage collection: the queue keeps the file ids until one is given.
  std::function<Status(const FileId& file_id)> delete_blob;
  /// How often crashed clients' sessions are expired. Default: 5000 ms.
  int session_expiry_interval_ms = 5000;
};

class MetaServer {
 public:
  /// Opens (or creates) the namespace and starts serving. Errors:
  /// kIOError / kCorruption (the RocksDB store; kUnavailable when another
  /// process holds it), kUnavailable (ports).
  static StatusOr<std::unique_ptr<MetaServer>> Start(const MetaServerOptions& options);
  ~MetaServer();
  MetaServer(const MetaServer&) = delete;
  MetaServer& operator=(const MetaServer&) = delete;

  uint16_t grpc_port() const;
  /// 0 when the HTTP face is off.
  uint16_t http_port() const;
  /// Stops serving, ends the background work and flushes the store.
  /// Errors: the flush's. Idempotent (later calls return OK).
  Status Stop();

  struct Impl;

 private:
  explicit MetaServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
