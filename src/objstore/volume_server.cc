// HTTP handlers of the volume server. Transport only: parse, call the store,
// map the Status to an HTTP status (ToHttpStatus), count metrics.
#include "objstore/volume_server.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/crc32c.h"
#include "common/file_id.h"
#include "common/http.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "objstore/anti_entropy.h"
#include "objstore/compression.h"
#include "objstore/replication.h"
#include "objstore/volume_grpc_service.h"

namespace needlefs {
namespace {

/// The one Status -> HTTP status mapping of the volume server.
int ToHttpStatus(const Status& s, const char* caller) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kResourceExhausted:
      return 507;
    case StatusCode::kOutOfRange:
      return 416;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kCorruption:
      return 500;
    default:
      spdlog::warn("volume_server.unmapped_status caller={} status=\"{}\"", caller, s.ToString());
      return 500;
  }
}

std::string HttpDate(uint64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

/// Parses an RFC 7231 IMF-fixdate; 0 when invalid.
uint64_t ParseHttpDate(std::string_view s) {
  std::tm tm{};
  std::string str(s);
  if (!strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return 0;
  return static_cast<uint64_t>(timegm(&tm));
}

uint64_t NowSeconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string Hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

struct Upload {
  std::string data;
  std::string name;
  std::string mime;
};

/// Extracts the first file part of a multipart/form-data body (RFC 7578).
Status ParseMultipart(std::string_view content_type, std::string& body, Upload* out) {
  size_t b = content_type.find("boundary=");
  if (b == std::string_view::npos) return Status::InvalidArgument("multipart without boundary");
  std::string boundary(content_type.substr(b + 9));
  if (size_t semi = boundary.find(';'); semi != std::string::npos) boundary.resize(semi);
  if (boundary.size() >= 2 && boundary.front() == '"')
    boundary = boundary.substr(1, boundary.size() - 2);
  std::string delim = "--" + boundary;
  size_t start = body.find(delim);
  if (start == std::string::npos) return Status::InvalidArgument("multipart boundary not found");
  size_t headers_start = start + delim.size();
  if (body.compare(headers_start, 2, "\r\n") != 0) {
    return Status::InvalidArgument("malformed multipart part");
  }
  headers_start += 2;
  size_t headers_end = body.find("\r\n\r\n", headers_start);
  if (headers_end == std::string::npos)
    return Status::InvalidArgument("multipart part headers truncated");
  std::string_view headers(body.data() + headers_start, headers_end - headers_start);
  size_t data_start = headers_end + 4;
  size_t data_end = body.find("\r\n" + delim, data_start);
  if (data_end == std::string::npos) return Status::InvalidArgument("multipart body truncated");
  // Part headers: Content-Disposition (filename) and Content-Type.
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = headers.size();
    std::string_view line = headers.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "content-type") {
      out->mime = std::string(value);
    } else if (name == "content-disposition") {
      size_t fn = value.find("filename=\"");
      if (fn != std::string_view::npos) {
        size_t end = value.find('"', fn + 10);
        if (end != std::string_view::npos)
          out->name = std::string(value.substr(fn + 10, end - fn - 10));
      }
    }
  }
  out->data = body.substr(data_start, data_end - data_start);
  return Status::OK();
}

/// Parses a single "bytes=" range against `size`. Returns false when the
/// header is absent or not a single byte range (serve the whole body);
/// sets *unsatisfiable when it cannot be met.
bool ParseRange(std::string_view h, uint64_t size, uint64_t* first, uint64_t* last,
                bool* unsatisfiable) {
  *unsatisfiable = false;
  if (h.rfind("bytes=", 0) != 0) return false;
  std::string_view spec = h.substr(6);
  if (spec.find(',') != std::string_view::npos) return false;  // multi-range: serve all
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return false;
  std::string a(spec.substr(0, dash)), b(spec.substr(dash + 1));
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 20 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (a.empty()) {  // suffix range: last N bytes
    if (!digits(b)) return false;
    uint64_t n = std::stoull(b);
    if (n == 0 || size == 0) {
      *unsatisfiable = true;
      return true;
    }
    *first = n >= size ? 0 : size - n;
    *last = size - 1;
    return true;
  }
  if (!digits(a) || (!b.empty() && !digits(b))) return false;
  *first = std::stoull(a);
  *last = b.empty() ? size - 1 : std::min<uint64_t>(std::stoull(b), size - 1);
  if (!b.empty() && std::stoull(b) < *first) return false;  // invalid: ignore per RFC 7233
  if (*first >= size) *unsatisfiable = true;
  return true;
}

/// A decimal number of at most 64 bits; nullopt for anything else (empty,
/// a non-digit, or too large: never an exception).
std::optional<uint64_t> ParseDecimal(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

/// The `volume` query parameter of an admin request as a volume id; nullopt
/// when it is missing or malformed (answer 400).
std::optional<VolumeId> VolumeParam(const HttpRequest& req) {
  const auto v = ParseDecimal(req.QueryParam("volume"));
  if (!v || *v > 0xFFFFFFFFull) return std::nullopt;
  return VolumeId(static_cast<uint32_t>(*v));
}

}  // namespace

struct VolumeServer::Impl {
  VolumeServerOptions options;
  Store* store;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<VolumeGrpcServer> grpc;
  std::unique_ptr<ReplicaForwarder> forwarder;  // null without a master
  std::unique_ptr<AntiEntropy> anti_entropy;    // null without a master
  ClusterIdCell cluster_id = std::make_shared<std::atomic<uint64_t>>(0);
  prometheus::Histogram* latency[4];  // GET, PUT, DELETE, other
  std::mutex syncer_mu;
  std::condition_variable syncer_cv;
  bool syncer_stop = false;  // GUARDED_BY(syncer_mu)
  std::thread syncer;        // runs SyncLoop

  /// Syncs the volumes with unstable writes every unstable_sync_interval_ms
  /// until Stop.
  void SyncLoop() {
    std::unique_lock<std::mutex> l(syncer_mu);
    while (!syncer_cv.wait_for(l, std::chrono::milliseconds(options.unstable_sync_interval_ms),
                               [this] { return syncer_stop; })) {
      l.unlock();
      Status s = store->SyncUnstable();
      if (!s.ok()) spdlog::warn("volume_server.sync_unstable error=\"{}\"", s.ToString());
      l.lock();
    }
  }

  HttpResponse Handle(HttpRequest& req);
  HttpResponse HandleStatus();
  HttpResponse HandleRead(HttpRequest& req, const FileId& fid);
  HttpResponse HandleWrite(HttpRequest& req, const FileId& fid);
  /// POST /admin/sync?volume=V: Volume::SyncAppends (after unstable writes).
  HttpResponse HandleSync(HttpRequest& req);
  HttpResponse HandleDelete(HttpRequest& req, const FileId& fid);
  /// Replica side of replicated writes: POST /admin/replicate?volume=V with
  /// records as the primary stored them, back to back.
  HttpResponse HandleReplicate(HttpRequest& req);
  /// Read repair: fetches the needle from another replica after a local
  /// checksum failure, stores the good copy here and returns it.
  StatusOr<Needle> RepairFromReplica(const FileId& fid, Volume& vol);
  /// Copies the volume's placement asks for, when this request must be
  /// forwarded to replicas (0: no forwarding).
  int ReplicasToForward(HttpRequest& req, Volume& vol);
  /// Replication of one write or delete: the hook for Volume::Write/Delete
  /// queues the stored record for the other replicas (empty when `copies` is
  /// 0), and Await waits for them; a failure reports the volume for repair.
  struct Replication {
    Impl* impl;
    VolumeId volume;
    int copies;
    std::shared_ptr<ReplicaForwarder::Ticket> ticket;
    Volume::RecordHook Hook() {
      if (copies <= 0) return nullptr;
      return [this](const std::string& rec) {
        ticket = impl->forwarder->Enqueue(volume, copies, rec);
      };
    }
    Status Await() {
      if (!ticket) return Status::OK();
      Status s = impl->forwarder->Wait(ticket);
      if (!s.ok() && impl->anti_entropy) impl->anti_entropy->ReportForRepair(volume);
      return s;
    }
  };
  void Count(const std::string& method, int status);
};

void VolumeServer::Impl::Count(const std::string& method, int status) {
  Metrics::Global()
      .Counter("needlefs_volume_server_requests_total", "HTTP requests by method and status",
               {{"method", method}, {"code", std::to_string(status)}})
      .Increment();
}

HttpResponse VolumeServer::Impl::Handle(HttpRequest& req) {
  auto start = std::chrono::steady_clock::now();
  HttpResponse resp;
  if (req.path == "/status") {
    resp = HandleStatus();
  } else if (req.path == "/metrics") {
    resp = Metrics::Global().HttpExposition();
  } else if (req.path == "/healthz") {
    resp.body = "ok\n";
  } else if (req.path == "/admin/replicate") {
    resp = HandleReplicate(req);
  } else if (req.path == "/admin/sync") {
    resp = HandleSync(req);
  } else {
    // "/3,01637037d6[.ext]" or "/3/01637037d6[/name]".
    std::string_view p(req.path);
    if (!p.empty() && p.front() == '/') p.remove_prefix(1);
    if (size_t slash = p.find('/'); slash != std::string_view::npos) {
      size_t second = p.find('/', slash + 1);
      if (second != std::string_view::npos) p = p.substr(0, second);
    }
    auto fid = FileId::Parse(p);
    if (!fid.ok()) {
      resp = HttpResponse::Error(400, fid.status().message());
    } else if (req.method == "GET" || req.method == "HEAD") {
      resp = HandleRead(req, *fid);
    } else if (req.method == "PUT" || req.method == "POST") {
      resp = HandleWrite(req, *fid);
    } else if (req.method == "DELETE") {
      resp = HandleDelete(req, *fid);
    } else {
      resp = HttpResponse::Error(405, "method not allowed");
      resp.headers["Allow"] = "GET, HEAD, PUT, POST, DELETE";
    }
  }
  int slot = req.method == "GET" || req.method == "HEAD"   ? 0
             : req.method == "PUT" || req.method == "POST" ? 1
             : req.method == "DELETE"                      ? 2
                                                           : 3;
  latency[slot]->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  Count(req.method, resp.status);
  return resp;
}

HttpResponse VolumeServer::Impl::HandleStatus() {
  nlohmann::json j;
  j["version"] = "needlefs 0.1.0";
  j["durability"] = DurabilityName(store->options().durability);
  j["max_volumes"] = store->options().max_volumes;
  j["free_slots"] = store->FreeSlots();
  j["volumes"] = nlohmann::json::array();
  for (const auto& st : store->Stats()) {
    j["volumes"].push_back({{"id", st.id.value},
                            {"collection", st.collection},
                            {"data_bytes", st.data_bytes},
                            {"needle_count", st.needle_count},
                            {"live_bytes", st.live_bytes},
                            {"garbage_bytes", st.garbage_bytes},
                            {"garbage_ratio", st.garbage_ratio()},
                            {"deleted_count", st.deleted_count},
                            {"read_only", st.read_only},
                            {"read_only_reason", st.read_only_reason},
                            {"compaction_revision", st.compaction_revision},
                            {"replication", st.replica_placement.ToString()},
                            {"ttl", Ttl::ToString(st.ttl)},
                            {"index_memory_bytes", st.index_memory_bytes}});
  }
  j["failed_volumes"] = store->FailedVolumes();
  j["volumes_needing_repair"] = nlohmann::json::array();
  if (anti_entropy) {
    for (VolumeId id : anti_entropy->NeedingRepair())
      j["volumes_needing_repair"].push_back(id.value);
  }
  return HttpResponse::Json(200, j.dump(2));
}

StatusOr<Needle> VolumeServer::Impl::RepairFromReplica(const FileId& fid, Volume& vol) {
  static auto& repairs =
      Metrics::Global().Counter("needlefs_volume_read_repairs_total",
                                "Needles restored from another replica after a CRC error");
  // Ask for the stored (possibly gzip) bytes so the copy is exact.
  auto r = forwarder->FetchFromReplica(fid.volume, "/" + fid.ToString(),
                                       HttpHeaders{{"Accept-Encoding", "gzip"}});
  if (!r.ok()) {
    spdlog::error("volume.read_repair_failed fid={} error=\"{}\"", fid.ToString(),
                  r.status().ToString());
    return r.status();
  }
  Needle n;
  n.key = fid.key;
  n.cookie = fid.cookie;
  n.data = std::move(r->body);
  if (r->Header("Content-Encoding") == "gzip") n.flags |= kFlagGzip;
  std::string mime(r->Header("Content-Type"));
  if (mime != "application/octet-stream") n.mime = mime.substr(0, 255);
  std::string_view cd = r->Header("Content-Disposition");
  if (size_t at = cd.find("filename=\""); at != std::string_view::npos) {
    size_t end = cd.find('"', at + 10);
    if (end != std::string_view::npos) n.name = std::string(cd.substr(at + 10, end - at - 10));
  }
  n.last_modified_s = ParseHttpDate(r->Header("Last-Modified"));
  auto w = vol.Write(n);
  if (!w.ok()) {
    // Serve the good bytes anyway; the volume may be read-only.
    spdlog::warn("volume.read_repair_not_stored fid={} error=\"{}\"", fid.ToString(),
                 w.status().ToString());
  } else {
    repairs.Increment();
    spdlog::warn("volume.read_repair fid={} restored from another replica", fid.ToString());
  }
  n.data_crc = Crc32c(n.data);
  n.append_at_ns = 0;
  return n;
}

HttpResponse VolumeServer::Impl::HandleRead(HttpRequest& req, const FileId& fid) {
  auto vol = store->GetVolume(fid.volume);
  if (!vol)
    return HttpResponse::Error(404, "volume " + std::to_string(fid.volume.value) + " not found");
  std::string_view range = req.Header("Range");
  // A single byte range: where it starts and ends and the data's whole size.
  // Of a plain needle it is read alone (not the whole needle), and `part` is
  // set at once; otherwise after the whole read.
  struct Part {
    uint64_t first = 0, last = 0, size = 0;
    bool unsatisfiable = false;
  };
  std::optional<Part> part;
  StatusOr<Needle> n = Status::NotFound("needle not found");
  if (!range.empty() && req.method == "GET") {
    Part p;
    bool ranged = false;
    n = vol->ReadRange(
        fid.key, fid.cookie,
        [&](uint64_t size) -> std::pair<uint64_t, uint64_t> {
          ranged = ParseRange(range, size, &p.first, &p.last, &p.unsatisfiable);
          if (!ranged || p.unsatisfiable) return {size, 0};
          return {p.first, p.last - p.first + 1};
        },
        &p.size);
    if (n.ok() && ranged && !n->gzipped()) {
      part = p;
    } else if (!n.ok() && !n.status().IsCorruption()) {
      // kNotFound, IOError: the whole read would say the same.
    } else {
      n = vol->Read(fid.key, fid.cookie);  // gzipped, not one range, or corrupt (repair below)
    }
  } else {
    n = vol->Read(fid.key, fid.cookie);
  }
  if (!n.ok() && n.status().IsCorruption() && forwarder && req.QueryParam("type") != "replicate") {
    auto repaired = RepairFromReplica(fid, *vol);
    if (repaired.ok()) n = std::move(repaired);
  }
  if (!n.ok()) return HttpResponse::Error(ToHttpStatus(n.status(), "read"), n.status().message());

  HttpResponse resp;
  const std::string etag = "\"" + Hex32(n->data_crc) + "\"";
  const uint64_t mtime = n->last_modified_s ? n->last_modified_s : n->append_at_ns / 1'000'000'000;
  resp.headers["ETag"] = etag;
  resp.headers["Last-Modified"] = HttpDate(mtime);
  resp.headers["Accept-Ranges"] = "bytes";
  std::string mime = n->mime.empty() ? MimeFromName(n->name) : n->mime;
  resp.headers["Content-Type"] = mime.empty() ? "application/octet-stream" : mime;
  if (!n->name.empty()) {
    std::string safe;
    for (char c : n->name)
      safe += (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
    resp.headers["Content-Disposition"] = "inline; filename=\"" + safe + "\"";
  }
  if (n->gzipped()) resp.headers["Vary"] = "Accept-Encoding";

  // Conditional requests (RFC 7232 §6): If-None-Match wins over If-Modified-Since.
  std::string_view inm = req.Header("If-None-Match");
  if (!inm.empty()) {
    if (inm == "*" || inm.find(etag) != std::string_view::npos ||
        inm.find(Hex32(n->data_crc)) != std::string_view::npos) {
      resp.status = 304;
      return resp;
    }
  } else if (std::string_view ims = req.Header("If-Modified-Since"); !ims.empty()) {
    uint64_t since = ParseHttpDate(ims);
    if (since != 0 && mtime <= since) {
      resp.status = 304;
      return resp;
    }
  }

  std::string body;
  if (part) {
    body = std::move(n->data);  // already just the range
  } else {
    std::string_view accept = req.Header("Accept-Encoding");
    if (n->gzipped() && range.empty() && accept.find("gzip") != std::string_view::npos) {
      resp.headers["Content-Encoding"] = "gzip";
      body = std::move(n->data);
    } else if (n->gzipped()) {
      auto plain = GzipDecompress(n->data, options.max_file_size_bytes * 4 + (1 << 20));
      if (!plain.ok()) return HttpResponse::Error(500, plain.status().message());
      body = std::move(plain).value();
    } else {
      body = std::move(n->data);
    }
    Part p;
    if (!range.empty() && ParseRange(range, body.size(), &p.first, &p.last, &p.unsatisfiable)) {
      p.size = body.size();
      if (!p.unsatisfiable) body = body.substr(p.first, p.last - p.first + 1);
      part = p;
    }
  }
  if (part) {
    if (part->unsatisfiable) {
      resp = HttpResponse::Error(416, "range not satisfiable");
      resp.headers["Content-Range"] = "bytes */" + std::to_string(part->size);
      return resp;
    }
    resp.status = 206;
    resp.headers["Content-Range"] = "bytes " + std::to_string(part->first) + "-" +
                                    std::to_string(part->last) + "/" + std::to_string(part->size);
  }
  if (req.method == "HEAD") {
    resp.content_length = body.size();
  } else {
    resp.body = std::move(body);
  }
  return resp;
}

int VolumeServer::Impl::ReplicasToForward(HttpRequest& req, Volume& vol) {
  if (!forwarder || req.QueryParam("type") == "replicate") return 0;
  int copies = vol.replica_placement().CopyCount();
  return copies > 1 ? copies : 0;
}

HttpResponse VolumeServer::Impl::HandleWrite(HttpRequest& req, const FileId& fid) {
  auto vol = store->GetVolume(fid.volume);
  if (!vol)
    return HttpResponse::Error(404, "volume " + std::to_string(fid.volume.value) + " not found");
  const int copies = ReplicasToForward(req, *vol);
  Upload up;
  std::string_view ct = req.Header("Content-Type");
  if (ct.rfind("multipart/form-data", 0) == 0) {
    Status s = ParseMultipart(ct, req.body, &up);
    if (!s.ok()) return HttpResponse::Error(400, s.message());
  } else {
    up.data = std::move(req.body);
    up.mime = std::string(ct);
    // A path segment after the fid names the file: "/3,01ab../name" or
    // "/3/01ab../name".
    std::string_view p(req.path);
    p.remove_prefix(std::min<size_t>(1, p.size()));
    size_t slash = p.find('/');
    if (slash != std::string_view::npos && p.substr(0, slash).find(',') == std::string_view::npos) {
      slash = p.find('/', slash + 1);
    }
    if (slash != std::string_view::npos) up.name = std::string(p.substr(slash + 1));
  }
  if (std::string n = req.QueryParam("name"); !n.empty()) up.name = n;
  if (up.data.size() > options.max_file_size_bytes) {
    return HttpResponse::Error(
        413, "blob larger than " + std::to_string(options.max_file_size_bytes) + " bytes");
  }
  // curl's default for --data-binary says nothing about the content.
  if (up.mime == "application/octet-stream" ||
      up.mime.rfind("application/x-www-form-urlencoded", 0) == 0) {
    up.mime.clear();
  }
  if (up.name.size() > 255) up.name.resize(255);
  if (up.mime.size() > 255) return HttpResponse::Error(400, "content type longer than 255 bytes");

  Needle n;
  n.key = fid.key;
  n.cookie = fid.cookie;
  n.name = up.name;
  n.mime = up.mime;
  n.last_modified_s = NowSeconds();
  if (std::string ts = req.QueryParam("ts");
      !ts.empty() && ts.find_first_not_of("0123456789") == std::string::npos && ts.size() < 20) {
    n.last_modified_s = std::stoull(ts);
  }
  if (std::string ttl = req.QueryParam("ttl"); !ttl.empty()) {
    auto t = Ttl::Parse(ttl);
    if (!t.ok()) return HttpResponse::Error(400, t.status().message());
    n.ttl = *t;
  }
  const size_t original_size = up.data.size();
  if (req.Header("Content-Encoding") == "gzip") {
    n.flags |= kFlagGzip;  // already compressed by the client
    n.data = std::move(up.data);
  } else if (options.compress && original_size >= 128 && IsCompressible(up.mime, up.name)) {
    auto z = GzipCompress(up.data);
    if (z.ok() && z->size() < original_size / 10 * 9) {
      n.flags |= kFlagGzip;
      n.data = std::move(z).value();
    } else {
      n.data = std::move(up.data);
    }
  } else {
    n.data = std::move(up.data);
  }
  // The replicas get the record exactly as it is stored here (same bytes,
  // same append time), queued once every local check passed and batched
  // with the other writes to this volume in flight; their durability waits
  // overlap this one's.
  // ?unstable=1: acknowledged once appended, durable at the next
  // /admin/sync (the replicas still wait for their own durability).
  const bool unstable = req.QueryParam("unstable") == "1";
  Replication replication{this, fid.volume, copies, nullptr};
  auto r = vol->Write(std::move(n), replication.Hook(), !unstable);
  const Status fs = replication.Await();
  if (!r.ok()) return HttpResponse::Error(ToHttpStatus(r.status(), "write"), r.status().message());
  if (!fs.ok()) return HttpResponse::Error(500, "stored here, but " + std::string(fs.message()));
  nlohmann::json j{{"name", up.name}, {"size", original_size}, {"eTag", Hex32(r->data_crc)}};
  HttpResponse resp = HttpResponse::Json(201, j.dump());
  resp.headers["ETag"] = "\"" + Hex32(r->data_crc) + "\"";
  return resp;
}

HttpResponse VolumeServer::Impl::HandleSync(HttpRequest& req) {
  if (req.method != "POST") return HttpResponse::Error(405, "POST to sync");
  const auto vid = VolumeParam(req);
  if (!vid) return HttpResponse::Error(400, "volume is missing or malformed");
  auto vol = store->GetVolume(*vid);
  if (!vol) return HttpResponse::Error(404, "volume " + std::to_string(vid->value) + " not found");
  Status s = vol->SyncAppends();
  if (!s.ok()) return HttpResponse::Error(500, s.message());
  static auto& syncs = Metrics::Global().Counter(
      "needlefs_volume_syncs_total", "POST /admin/sync answered: unstable writes made durable");
  syncs.Increment();
  return HttpResponse::Json(200, "{}");
}

HttpResponse VolumeServer::Impl::HandleReplicate(HttpRequest& req) {
  if (req.method != "POST") return HttpResponse::Error(405, "POST records");
  const auto vid = VolumeParam(req);
  if (!vid) return HttpResponse::Error(400, "volume is missing or malformed");
  // Ids are random 64-bit numbers; a missing or malformed one counts as
  // unknown (0), as from a server that has not heard from its master.
  const std::string c = req.QueryParam("cluster");
  const uint64_t theirs = ParseDecimal(c).value_or(0);
  if (!SameCluster(cluster_id->load(), theirs)) {
    return HttpResponse::Error(409, "records of cluster " + c + " sent to a server of cluster " +
                                        std::to_string(cluster_id->load()));
  }
  auto vol = store->GetVolume(*vid);
  if (!vol) return HttpResponse::Error(404, "volume " + std::to_string(vid->value) + " not found");
  std::vector<std::string_view> records;
  std::string_view body(req.body);
  while (!body.empty()) {
    if (body.size() < kNeedleHeaderSize) return HttpResponse::Error(400, "truncated record header");
    const uint64_t size = NeedleRecordSize(DecodeNeedleHeader(body.data()).body_size);
    if (size > body.size()) return HttpResponse::Error(400, "truncated record");
    records.push_back(body.substr(0, size));
    body.remove_prefix(size);
  }
  Status s = vol->AppendRecords(records);
  if (!s.ok()) return HttpResponse::Error(ToHttpStatus(s, "replicate"), s.message());
  return HttpResponse::Json(200, nlohmann::json{{"records", records.size()}}.dump());
}

HttpResponse VolumeServer::Impl::HandleDelete(HttpRequest& req, const FileId& fid) {
  auto vol = store->GetVolume(fid.volume);
  if (!vol)
    return HttpResponse::Error(404, "volume " + std::to_string(fid.volume.value) + " not found");
  const int copies = ReplicasToForward(req, *vol);
  // The tombstone travels like a write (same queue, so it never overtakes
  // a write of the same needle still on its way).
  Replication replication{this, fid.volume, copies, nullptr};
  auto r = vol->Delete(fid.key, fid.cookie, replication.Hook());
  const Status fs = replication.Await();
  if (!r.ok()) return HttpResponse::Error(ToHttpStatus(r.status(), "delete"), r.status().message());
  if (!fs.ok()) return HttpResponse::Error(500, "deleted here, but " + std::string(fs.message()));
  return HttpResponse::Json(202, nlohmann::json{{"size", *r}}.dump());
}

VolumeServer::VolumeServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeServer::~VolumeServer() { Stop(); }

StatusOr<std::unique_ptr<VolumeServer>> VolumeServer::Start(const VolumeServerOptions& options,
                                                            Store* store) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->store = store;
  const char* names[4] = {"GET", "PUT", "DELETE", "OTHER"};
  for (int i = 0; i < 4; ++i) {
    impl->latency[i] = &Metrics::Global().Histogram(
        "needlefs_volume_server_request_seconds", "HTTP request latency by method",
        {{"method", names[i]}}, Metrics::LatencyBuckets());
  }
  HttpServerOptions http;
  http.listen_address = options.ip;
  http.port = options.port;
  // Multipart framing adds a little to the blob itself.
  http.max_body_bytes = options.max_file_size_bytes + 64 * 1024;
  http.server_name = "needlefs-volume";
  Impl* raw = impl.get();
  NEEDLEFS_ASSIGN_OR_RETURN(
      impl->http, HttpServer::Start(http, [raw](HttpRequest& r) { return raw->Handle(r); }));
  if (!options.master.empty()) {
    const std::string self = JoinHostPort(options.ip, impl->http->port());
    impl->forwarder = std::make_unique<ReplicaForwarder>(options.master, self, impl->cluster_id);
    AntiEntropyOptions ae;
    ae.interval_ms = options.anti_entropy_interval_ms;
    impl->anti_entropy = std::make_unique<AntiEntropy>(
        store, MasterReplicaFinder(options.master, self, impl->cluster_id), ae);
  }
  NEEDLEFS_ASSIGN_OR_RETURN(
      impl->grpc, VolumeGrpcServer::Start(store, impl->anti_entropy.get(), impl->cluster_id,
                                          options.ip, options.grpc_port));
  if (impl->anti_entropy) impl->anti_entropy->Start();
  if (options.unstable_sync_interval_ms > 0) {
    Impl* raw_impl = impl.get();
    impl->syncer = std::thread([raw_impl] { raw_impl->SyncLoop(); });
  }
  spdlog::info("volume_server.start http={}:{} grpc={}:{}", options.ip, impl->http->port(),
               options.ip, impl->grpc->port());
  return std::unique_ptr<VolumeServer>(new VolumeServer(std::move(impl)));
}

uint16_t VolumeServer::http_port() const { return impl_->http->port(); }
uint16_t VolumeServer::grpc_port() const { return impl_->grpc->port(); }

void VolumeServer::SetClusterId(uint64_t id) { impl_->cluster_id->store(id); }

std::vector<VolumeId> VolumeServer::VolumesNeedingRepair() const {
  return impl_->anti_entropy ? impl_->anti_entropy->NeedingRepair() : std::vector<VolumeId>{};
}

void VolumeServer::Stop() {
  if (!impl_) return;
  if (impl_->http) impl_->http->Stop();
  if (impl_->anti_entropy) impl_->anti_entropy->Stop();
  if (impl_->grpc) impl_->grpc->Shutdown();
  {
    std::lock_guard<std::mutex> g(impl_->syncer_mu);
    impl_->syncer_stop = true;
  }
  impl_->syncer_cv.notify_all();
  if (impl_->syncer.joinable()) impl_->syncer.join();
}

}  // namespace needlefs
