#include "client/blob_client.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

namespace needlefs {

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

StatusOr<std::vector<std::string>> BlobClient::Locate(VolumeId volume, bool refresh) {
  if (options_.master.empty()) {
    if (options_.volume_servers.empty()) {
      return Status::InvalidArgument("no master and no volume servers configured");
    }
    return options_.volume_servers;
  }
  return locator_.Lookup(std::to_string(volume.value), refresh);
}

namespace {

std::string LayoutOf(const UploadRequest& req) {
  return req.replication + "|" + req.collection + "|" + req.ttl;
}

}  // namespace

StatusOr<BlobClient::Assignment> BlobClient::Assign(const UploadRequest& req) {
  const std::string layout = LayoutOf(req);
  {
    std::lock_guard<std::mutex> g(assign_mu_);
    auto it = assign_pools_.find(layout);
    if (it != assign_pools_.end() && it->second.remaining > 0) {
      AssignPool& p = it->second;
      --p.remaining;
      Assignment a{p.next, p.url};
      p.next.key = NeedleKey(p.next.key.value + 1);
      return a;
    }
  }
  const int count = std::max(1, options_.assign_batch);
  std::string assign = "/dir/assign?count=" + std::to_string(count);
  if (!req.replication.empty()) assign += "&replication=" + PercentEncode(req.replication);
  if (!req.collection.empty()) assign += "&collection=" + PercentEncode(req.collection);
  if (!req.ttl.empty()) assign += "&ttl=" + PercentEncode(req.ttl);
  auto a = Call(options_.master, "POST", assign);
  if (!a.ok()) return a.status().WithContext("assign");
  auto j = nlohmann::json::parse(a->body, nullptr, false);
  if (a->status != 200 || !j.is_object() || !j.contains("fid") || !j["fid"].is_string() ||
      !j.contains("url") || !j["url"].is_string()) {
    std::string msg = j.is_object() ? j.value("error", a->body) : a->body;
    if (a->status == 503) return Status::FailedPrecondition("assign: " + msg);
    return Status::Unavailable("assign answered " + std::to_string(a->status) + ": " + msg);
  }
  const std::string fid = j["fid"], url = j["url"];
  // Keys fid.key .. fid.key+count-1 (same volume and cookie) are ours.
  auto parsed = FileId::Parse(fid);
  if (!parsed.ok()) return Status::Unavailable("assign answered a malformed fid: " + fid);
  if (count > 1) {
    FileId next = *parsed;
    next.key = NeedleKey(next.key.value + 1);
    std::lock_guard<std::mutex> g(assign_mu_);
    assign_pools_[layout] = AssignPool{next, static_cast<uint64_t>(count - 1), url};
  }
  return Assignment{*parsed, url};
}

void BlobClient::DropAssignPool(const UploadRequest& req) {
  std::lock_guard<std::mutex> g(assign_mu_);
  assign_pools_.erase(LayoutOf(req));
}

StatusOr<FileId> BlobClient::Upload(const std::string& data, const UploadRequest& req) {
  if (options_.master.empty()) return Status::InvalidArgument("upload needs a master");
  Status last = Status::Unavailable("no attempt");
  // Up to 5 tries, 0.1 + 0.2 + 0.4 + 0.8 s apart: rides out a volume server
  // that is still joining (no writable volume yet) or one that just failed.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    auto a = Assign(req);
    if (!a.ok()) {
      last = a.status();
      continue;
    }
    std::string target = "/" + a->fid.ToString();
    if (!req.name.empty()) target += "?name=" + PercentEncode(req.name);
    if (req.unstable) target += req.name.empty() ? "?unstable=1" : "&unstable=1";
    HttpHeaders headers;
    if (!req.mime.empty()) headers["Content-Type"] = req.mime;
    auto put = Call(a->url, "PUT", target, data, headers);
    if (put.ok() && put->status == 201) return a->fid;
    DropAssignPool(req);  // the volume may be full, read-only or gone: ask again
    last = put.ok() ? Status::Unavailable(a->url + " answered " + std::to_string(put->status) +
                                          ": " + put->body)
                    : put.status().WithContext(a->url);
  }
  return last;
}

namespace {

/// A 416 reply to a Range request whose Content-Range ("bytes */N") says
/// the blob has N <= offset bytes. Any other 416 (a volume server's short
/// read is one) is a replica error, not an empty answer.
bool RangeStartsPastEnd(const HttpClientResponse& r, uint64_t offset) {
  std::string_view cr = r.Header("Content-Range");
  if (cr.rfind("bytes */", 0) != 0) return false;
  const std::string n(cr.substr(8));
  if (n.empty() || n.size() > 19 || n.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  return offset >= std::stoull(n);
}

}  // namespace

StatusOr<std::string> BlobClient::Read(const FileId& fid) { return Get(fid, 0, 0); }

StatusOr<std::string> BlobClient::ReadRange(const FileId& fid, uint64_t offset, uint64_t length) {
  if (length == 0) return std::string();
  return Get(fid, offset, length);
}

StatusOr<std::string> BlobClient::Get(const FileId& file_id, uint64_t offset, uint64_t length) {
  const std::string fid = file_id.ToString();
  HttpHeaders headers;
  if (length > 0) {
    headers["Range"] =
        "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  }
  Status last = Status::NotFound("blob " + fid + " not found");
  for (int attempt = 0; attempt < 2; ++attempt) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto servers, Locate(file_id.volume, attempt > 0));
    bool any_error = false;
    for (const auto& s : servers) {
      auto r = Call(s, "GET", "/" + fid, "", headers);
      if (r.ok() && r->status == 200 && length > 0) {
        // A server that ignored the range sent the whole blob.
        if (offset >= r->body.size()) return std::string();
        return r->body.substr(offset, length);
      }
      if (r.ok() && (r->status == 200 || r->status == 206)) return std::move(r->body);
      if (r.ok() && r->status == 416 && length > 0 && RangeStartsPastEnd(*r, offset)) {
        return std::string();
      }
      if (r.ok() && r->status == 404) continue;  // maybe another replica has it
      any_error = true;
      last =
          r.ok()
              ? Status::Unavailable(s + " answered " + std::to_string(r->status) + ": " + r->body)
              : r.status().WithContext(s);
    }
    // Every replica said 404: sure only with fresh locations (the volume
    // may have moved to other servers since they were cached).
    if (!any_error && attempt > 0) return Status::NotFound("blob " + fid + " not found");
  }
  return last;
}

Status BlobClient::Delete(const FileId& file_id) {
  const std::string fid = file_id.ToString();
  Status unreachable;
  for (int attempt = 0; attempt < 2; ++attempt) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto servers, Locate(file_id.volume, attempt > 0));
    unreachable = Status::OK();
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
    if (!unreachable.ok()) return unreachable;
    // Every replica said 404: ask the master again in case the volume moved.
  }
  return Status::OK();  // gone everywhere
}

Status BlobClient::Sync(VolumeId volume) {
  const std::string target = "/admin/sync?volume=" + std::to_string(volume.value);
  Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The second try asks the master again: the volume may have moved.
    NEEDLEFS_ASSIGN_OR_RETURN(auto servers, Locate(volume, attempt > 0));
    last = Status::OK();
    bool found = false;
    for (const auto& server : servers) {
      auto r = Call(server, "POST", target);
      if (!r.ok()) {
        last = r.status().WithContext("sync " + server);
      } else if (r->status == 200) {
        found = true;
      } else if (r->status != 404) {  // 404: the volume is not on that server
        last = Status::Unavailable("sync " + server + " answered " + std::to_string(r->status) +
                                   ": " + r->body);
      }
    }
    if (!last.ok()) continue;
    if (found) return Status::OK();
    last = Status::NotFound("no server holds volume " + std::to_string(volume.value));
  }
  return last;
}

}  // namespace needlefs
