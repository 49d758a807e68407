#include "client/blob_client.h"

#include "common/http.h"

namespace needlefs {

BlobClient::BlobClient(std::vector<std::string> volume_servers, int timeout_ms)
    : servers_(std::move(volume_servers)), timeout_ms_(timeout_ms) {}

Status BlobClient::Delete(const std::string& file_id) const {
  if (servers_.empty()) return Status::InvalidArgument("no volume servers configured");
  if (file_id.empty() || file_id.find_first_of("/?# ") != std::string::npos) {
    return Status::InvalidArgument("bad file id: " + file_id);
  }
  for (const auto& server : servers_) {
    std::string host;
    uint16_t port;
    NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(server, &host, &port));
    HttpClient client(host, port, timeout_ms_);
    auto r = client.Request("DELETE", "/" + file_id);
    if (!r.ok()) return r.status().WithContext(server);
    if (r->status == 202) return Status::OK();
    if (r->status == 404) continue;  // not on this server (or already gone)
    return Status::Internal(server + " answered " + std::to_string(r->status) + ": " + r->body);
  }
  return Status::OK();  // gone everywhere
}

}  // namespace needlefs
