#include "client/blob_client.h"

#include <nlohmann/json.hpp>

namespace needlefs {
namespace {

bool ValidFid(const std::string& fid) {
  return !fid.empty() && fid.find(',') != std::string::npos &&
         fid.find_first_of("/?# ") == std::string::npos;
}

}  // namespace

BlobClient::BlobClient(BlobClientOptions options)
    : options_(std::move(options)),
      pool_(options_.timeout_ms),
      locator_(options_.master, &pool_, options_.location_cache_ms) {}

BlobClient::BlobClient(std::vector<std::string> volume_servers, int timeout_ms)
    : BlobClient(BlobClientOptions{"", std::move(volume_servers), timeout_ms, 60'000}) {}

StatusOr<HttpClientResponse> BlobClient::Call(const std::string& server, const std::string& method,
                                              const std::string& target, const std::string& body,
                                              const HttpHeaders& headers) {
  return pool_.Request(server, method, target, body, headers);
}

StatusOr<std::vector<std::string>> BlobClient::Locate(const std::string& fid, bool refresh) {
  if (options_.master.empty()) {
    if (options_.volume_servers.empty()) {
      return Status::InvalidArgument("no master and no volume servers configured");
    }
    return options_.volume_servers;
  }
  return locator_.Lookup(fid.substr(0, fid.find(',')), refresh);
}

StatusOr<std::string> BlobClient::Upload(const std::string& data, const UploadRequest& req) {
  if (options_.master.empty()) return Status::InvalidArgument("upload needs a master");
  std::string assign = "/dir/assign?count=1";
  if (!req.replication.empty()) assign += "&replication=" + PercentEncode(req.replication);
  if (!req.collection.empty()) assign += "&collection=" + PercentEncode(req.collection);
  if (!req.ttl.empty()) assign += "&ttl=" + PercentEncode(req.ttl);
  Status last = Status::Unavailable("no attempt");
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto a = Call(options_.master, "POST", assign);
    if (!a.ok()) {
      last = a.status().WithContext("assign");
      continue;
    }
    auto j = nlohmann::json::parse(a->body, nullptr, false);
    if (a->status != 200 || !j.is_object() || !j.contains("fid")) {
      std::string msg = j.is_object() ? j.value("error", a->body) : a->body;
      if (a->status == 503) return Status::FailedPrecondition("assign: " + msg);
      last = Status::Unavailable("assign answered " + std::to_string(a->status) + ": " + msg);
      continue;
    }
    const std::string fid = j["fid"], url = j["url"];
    std::string target = "/" + fid;
    if (!req.name.empty()) target += "?name=" + PercentEncode(req.name);
    HttpHeaders headers;
    if (!req.mime.empty()) headers["Content-Type"] = req.mime;
    auto put = Call(url, "PUT", target, data, headers);
    if (put.ok() && put->status == 201) return fid;
    last = put.ok() ? Status::Unavailable(url + " answered " + std::to_string(put->status) + ": " +
                                          put->body)
                    : put.status().WithContext(url);
  }
  return last;
}

StatusOr<std::string> BlobClient::Read(const std::string& fid) {
  if (!ValidFid(fid)) return Status::InvalidArgument("bad file id: " + fid);
  Status last = Status::NotFound("blob " + fid + " not found");
  for (int attempt = 0; attempt < 2; ++attempt) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto servers, Locate(fid, attempt > 0));
    bool any_error = false;
    for (const auto& s : servers) {
      auto r = Call(s, "GET", "/" + fid);
      if (r.ok() && r->status == 200) return std::move(r->body);
      if (r.ok() && r->status == 404) continue;  // maybe another replica has it
      any_error = true;
      last =
          r.ok()
              ? Status::Unavailable(s + " answered " + std::to_string(r->status) + ": " + r->body)
              : r.status().WithContext(s);
    }
    if (!any_error) return Status::NotFound("blob " + fid + " not found");
  }
  return last;
}

Status BlobClient::Delete(const std::string& fid) {
  if (!ValidFid(fid)) return Status::InvalidArgument("bad file id: " + fid);
  NEEDLEFS_ASSIGN_OR_RETURN(auto servers, Locate(fid, false));
  Status unreachable;
  for (const auto& server : servers) {
    auto r = Call(server, "DELETE", "/" + fid);
    if (!r.ok()) {
      unreachable = r.status().WithContext(server);  // try another replica
      continue;
    }
    if (r->status == 202) return Status::OK();  // the server deletes the other replicas
    if (r->status == 404) continue;             // not on this server (or already gone)
    return Status::Internal(server + " answered " + std::to_string(r->status) + ": " + r->body);
  }
  return unreachable;  // OK when every server said it is gone
}

}  // namespace needlefs
