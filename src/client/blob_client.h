// Blob I/O against the cluster, for every role that stores file data: assign
// a file id from the master, upload to the assigned volume server (retrying
// with a new assignment), look volumes up with a location cache that is
// refreshed on errors, read with replica fallback, delete. Without a master
// (meta's garbage collector before the cluster existed) it works on a static
// list of volume servers.
//
// Thread-safe: keep-alive connections are pooled per server.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/file_id.h"
#include "common/http.h"
#include "common/status.h"
#include "volume_rpc/volume_locator.h"

namespace needlefs {

struct BlobClientOptions {
  /// The master's HTTP "host:port"; "" = use `volume_servers` only.
  std::string master;
  /// Volume servers "host:port" to try when there is no master.
  std::vector<std::string> volume_servers;
  int timeout_ms = 30'000;
  /// How long a volume's locations stay cached. Default: 60 s.
  int location_cache_ms = 60'000;
  /// File ids reserved per /dir/assign call (count=N): the master hands out
  /// N consecutive keys on one volume, so N small uploads cost one master
  /// round trip. 1 = ask the master for every upload. Default: 64.
  int assign_batch = 64;
};

/// What an upload asks the master for.
struct UploadRequest {
  std::string replication;  ///< "" = the master's default
  std::string collection;
  std::string ttl;
  std::string name;  ///< stored with the needle
  std::string mime;
  /// Acknowledged once the volume server has appended it (survives kill -9
  /// of the server, not a machine crash) instead of after its fsync; Sync
  /// of the blob's volume makes it durable. Default: false.
  bool unstable = false;
};

class BlobClient {
 public:
  explicit BlobClient(BlobClientOptions options);
  /// Convenience: no master, a static list of volume servers.
  explicit BlobClient(std::vector<std::string> volume_servers, int timeout_ms = 10'000);

  /// Stores `data` and returns its file id. Tries up to 5 assignments over
  /// about 1.5 s (a volume server may still be joining the master).
  /// Errors: kFailedPrecondition (the master cannot place the replication,
  /// message from it), kUnavailable, kInvalidArgument (no master).
  StatusOr<FileId> Upload(const std::string& data, const UploadRequest& req = {});
  /// The blob's bytes, from the first replica that has it intact; a replica
  /// that fails sends the read to the next and refreshes the cache.
  /// Errors: kNotFound (no replica has it), kUnavailable.
  StatusOr<std::string> Read(const FileId& file_id);
  /// Bytes [offset, offset + length) of the blob (fewer at its end; none
  /// past it), with an HTTP Range request: the volume server reads just
  /// those bytes, verifying the record's checksum but not the data's (that
  /// one covers the whole blob; Read verifies it). Replicas and errors as
  /// Read.
  StatusOr<std::string> ReadRange(const FileId& file_id, uint64_t offset, uint64_t length);
  /// Deletes the blob (the volume server deletes the replicas). OK when it
  /// is already gone. Errors: kUnavailable, kInternal (refused).
  Status Delete(const FileId& file_id);
  /// Makes every write to volume `volume` so far durable on every replica
  /// (POST /admin/sync to each server that holds it; asks the master again
  /// once when that fails): what follows unstable uploads. Errors:
  /// kUnavailable (a replica could not be reached or refused), kNotFound
  /// (no server holds the volume any more).
  Status Sync(VolumeId volume);

 private:
  StatusOr<HttpClientResponse> Call(const std::string& server, const std::string& method,
                                    const std::string& target, const std::string& body = {},
                                    const HttpHeaders& headers = {});
  /// Read (length 0: the whole blob) and ReadRange.
  StatusOr<std::string> Get(const FileId& file_id, uint64_t offset, uint64_t length);
  /// Servers holding `volume` (`refresh`: ask the master, not the cache).
  StatusOr<std::vector<std::string>> Locate(VolumeId volume, bool refresh);

  /// One assignment: a file id and the volume server to upload it to.
  struct Assignment {
    FileId fid;
    std::string url;
  };
  /// Keys left from the last /dir/assign of one (replication, collection,
  /// ttl) layout.
  struct AssignPool {
    FileId next;  // the next unused key, with the batch's volume and cookie
    uint64_t remaining = 0;
    std::string url;
  };
  /// A file id from the pool of `req`'s layout, asking the master for a new
  /// batch when it is empty. Errors as Upload.
  StatusOr<Assignment> Assign(const UploadRequest& req);
  /// Forgets the pool of `req`'s layout (its volume refused a write).
  void DropAssignPool(const UploadRequest& req);

  const BlobClientOptions options_;
  HttpClientPool pool_;
  VolumeLocator locator_;  // used when options_.master is set
  std::mutex assign_mu_;
  std::map<std::string, AssignPool> assign_pools_;  // GUARDED_BY(assign_mu_)
};

}  // namespace needlefs
