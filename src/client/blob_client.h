// Blob operations on volume servers for the roles that hold file ids
// (meta's garbage collector now; the file client later). Until the master
// exists, the volume servers are a static list and a blob is looked for on
// each of them.
//
// Thread-safe (one HttpClient per call).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace needlefs {

class BlobClient {
 public:
  /// `volume_servers`: "host:port" HTTP addresses.
  explicit BlobClient(std::vector<std::string> volume_servers, int timeout_ms = 10'000);

  /// Deletes blob `file_id` ("3,01637037d6"). OK when a server deleted it or
  /// every server says it does not exist. Errors: kUnavailable (a server
  /// could not be asked, so the blob may still exist), kInvalidArgument (bad
  /// fid or no servers), kInternal (a server refused, e.g. read-only volume).
  Status Delete(const std::string& file_id) const;

 private:
  std::vector<std::string> servers_;
  int timeout_ms_;
};

}  // namespace needlefs
