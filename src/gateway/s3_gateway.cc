#include "gateway/s3_gateway.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <variant>

#include "client/file_system.h"
#include "common/crc32c.h"
#include "common/http.h"
#include "common/logging.h"
#include "gateway/sigv4.h"

namespace needlefs::gateway {
namespace {

constexpr const char* kXmlHeader = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
constexpr const char* kNs = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr const char* kTmpPrefix = ".needlefs-tmp-";
constexpr const char* kEtagXattr = "user.s3.etag";
constexpr const char* kContentTypeXattr = "user.s3.content-type";
constexpr const char* kMetaXattrPrefix = "user.s3.meta.";
constexpr const char* kTaggingXattr = "user.s3.tagging";
constexpr size_t kMaxKeyBytes = 1024;
constexpr size_t kMaxSegmentBytes = 255;

/// XML's five predefined entities back to their characters (the bodies of
/// DeleteObjects and PutObjectTagging).
std::string XmlUnescape(std::string v) {
  for (const auto& [ent, ch] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}}) {
    for (size_t p = 0; (p = v.find(ent, p)) != std::string::npos; p += ch.size()) {
      v.replace(p, ent.size(), ch);
    }
  }
  return v;
}

/// A query component decoded: '+' is a space, then %XX.
std::string QueryDecode(std::string_view s) {
  std::string plus(s);
  std::replace(plus.begin(), plus.end(), '+', ' ');
  return PercentDecode(plus);
}

std::map<std::string, std::string> ParseQuery(std::string_view raw) {
  std::map<std::string, std::string> q;
  size_t at = 0;
  while (at <= raw.size() && !raw.empty()) {
    size_t amp = raw.find('&', at);
    if (amp == std::string_view::npos) amp = raw.size();
    std::string_view part = raw.substr(at, amp - at);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      q[QueryDecode(part.substr(0, eq))] =
          eq == std::string_view::npos ? "" : QueryDecode(part.substr(eq + 1));
    }
    at = amp + 1;
    if (amp == raw.size()) break;
  }
  return q;
}

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(n);
  return out;
}

std::optional<std::string> Unbase64(std::string_view b64) {
  if (b64.empty() || b64.size() % 4 != 0) return std::nullopt;
  std::string out(b64.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (b64.back() == '=') ++pad;
  if (b64.size() > 1 && b64[b64.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  return Hex(raw);
}

std::string IsoTime(int64_t ns) {
  const time_t s = static_cast<time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + "." + std::to_string(1000 + (ns / 1'000'000) % 1000).substr(1) + "Z";
}

std::string HttpDate(int64_t ns) {
  const time_t s = static_cast<time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

/// RFC 7231 IMF-fixdate (and ISO 8601 as some tools send) -> seconds; -1.
int64_t ParseHttpDate(const std::string& s) {
  std::tm tm{};
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%Y-%m-%dT%H:%M:%S"}) {
    tm = {};
    const char* end = strptime(s.c_str(), fmt, &tm);
    if (end != nullptr) return static_cast<int64_t>(timegm(&tm));
  }
  return -1;
}

/// CRC-64/NVME (reflected, polynomial 0x9A6C9329AC4BC9B5), as S3's
/// x-amz-checksum-crc64nvme.
uint64_t Crc64Nvme(const void* data, size_t len, uint64_t crc) {
  static const auto table = [] {
    std::array<uint64_t, 256> t{};
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x9A6C9329AC4BC9B5ull : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string BigEndian(uint64_t v, int bytes) {
  std::string out(bytes, '\0');
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

/// The digests of a body computed while it streams.
class BodyDigests {
 public:
  explicit BodyDigests(std::string checksum_algo) : algo_(std::move(checksum_algo)) {
    md5_ = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md5_, EVP_md5(), nullptr);
    sha256_ = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha256_, EVP_sha256(), nullptr);
    if (algo_ == "sha1") {
      sha1_ = EVP_MD_CTX_new();
      EVP_DigestInit_ex(sha1_, EVP_sha1(), nullptr);
    }
  }
  ~BodyDigests() {
    EVP_MD_CTX_free(md5_);
    EVP_MD_CTX_free(sha256_);
    if (sha1_) EVP_MD_CTX_free(sha1_);
  }
  void Update(std::string_view d) {
    EVP_DigestUpdate(md5_, d.data(), d.size());
    EVP_DigestUpdate(sha256_, d.data(), d.size());
    if (sha1_) EVP_DigestUpdate(sha1_, d.data(), d.size());
    if (algo_ == "crc32")
      crc32_ = crc32(crc32_, reinterpret_cast<const Bytef*>(d.data()), d.size());
    if (algo_ == "crc32c") crc32c_ = Crc32c(d, crc32c_);
    if (algo_ == "crc64nvme") crc64_ = Crc64Nvme(d.data(), d.size(), crc64_);
    bytes_ += d.size();
  }
  void Finish() {
    md5_raw_ = Final(md5_);
    sha256_raw_ = Final(sha256_);
    if (sha1_) sha1_raw_ = Final(sha1_);
  }
  const std::string& md5() const { return md5_raw_; }
  const std::string& sha256() const { return sha256_raw_; }
  uint64_t bytes() const { return bytes_; }
  /// The base64 checksum of the announced algorithm ("" when none).
  std::string Checksum() const {
    if (algo_ == "crc32") return Base64(BigEndian(crc32_, 4));
    if (algo_ == "crc32c") return Base64(BigEndian(crc32c_, 4));
    if (algo_ == "crc64nvme") return Base64(BigEndian(crc64_, 8));
    if (algo_ == "sha1") return Base64(sha1_raw_);
    if (algo_ == "sha256") return Base64(sha256_raw_);
    return "";
  }

 private:
  static std::string Final(EVP_MD_CTX* c) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c, md, &n);
    return std::string(reinterpret_cast<char*>(md), n);
  }
  std::string algo_;
  EVP_MD_CTX* md5_ = nullptr;
  EVP_MD_CTX* sha256_ = nullptr;
  EVP_MD_CTX* sha1_ = nullptr;
  uLong crc32_ = 0;
  uint32_t crc32c_ = 0;
  uint64_t crc64_ = 0;
  uint64_t bytes_ = 0;
  std::string md5_raw_, sha256_raw_, sha1_raw_;
};

constexpr const char* kChecksumAlgos[] = {"crc32", "crc32c", "crc64nvme", "sha1", "sha256"};

/// "Code: message" (how body sources report S3 errors through Status).
Status S3Failure(const std::string& code, const std::string& message) {
  return Status::InvalidArgument(code + ": " + message);
}

bool ValidBucketName(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return false;
    }
  }
  return b.front() != '.' && b.front() != '-' && b.back() != '.' && b.back() != '-';
}

/// Why `key` cannot be a path ("" when it can). A trailing '/' is a
/// directory key.
std::string KeyProblem(const std::string& key) {
  if (key.empty()) return "the key is empty";
  if (key.size() > kMaxKeyBytes) return "the key is longer than 1024 bytes";
  if (key.find('\0') != std::string::npos) return "the key contains NUL";
  if (key.front() == '/') return "the key starts with '/' (an empty path segment)";
  std::string_view k(key);
  if (k.back() == '/') k.remove_suffix(1);
  size_t at = 0;
  for (;;) {
    const size_t slash = k.find('/', at);
    const std::string_view seg = k.substr(at, slash == k.npos ? k.npos : slash - at);
    if (seg.empty()) return "the key has an empty path segment ('//')";
    if (seg == "." || seg == "..") return "the key has a '.' or '..' segment";
    if (seg.size() > kMaxSegmentBytes) return "a segment of the key is longer than 255 bytes";
    if (seg.rfind(kTmpPrefix, 0) == 0)
      return "the key uses the reserved name prefix .needlefs-tmp-";
    if (slash == k.npos) break;
    at = slash + 1;
  }
  return "";
}

/// An errno from the layer as an S3 error (status, code).
std::pair<int, std::string> S3ErrorOf(const Status& s, bool is_bucket) {
  switch (s.posix_errno()) {
    case ENOENT:
      return {404, is_bucket ? "NoSuchBucket" : "NoSuchKey"};
    case EACCES:
    case EPERM:
      return {403, "AccessDenied"};
    case ENOTEMPTY:
      return {409, "BucketNotEmpty"};
    case EEXIST:
      return {409, "BucketAlreadyOwnedByYou"};
    case ENOSPC:
    case EDQUOT:
      return {507, "InsufficientStorage"};
    case ENAMETOOLONG:
      return {400, "KeyTooLongError"};
    case EROFS:
      return {403, "AccessDenied"};
    case ENOTDIR:
    case EISDIR:
      return {409, "InvalidRequest"};
    default:
      break;
  }
  if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
    return {503, "ServiceUnavailable"};
  }
  return {500, "InternalError"};
}

/// One object of a listing.
struct ListedObject {
  std::string key;
  InodeAttr attr;
};

}  // namespace

StatusOr<uint32_t> ParseFileMode(std::string_view text) {
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '7'; })) {
    return Status::InvalidArgument("file mode: octal digits, e.g. 0640");
  }
  const uint32_t mode = static_cast<uint32_t>(std::stoul(std::string(text), nullptr, 8));
  if (mode > 0777) return Status::InvalidArgument("file mode: no set-id or sticky bits");
  return mode;
}

// ---- identities ----

StatusOr<S3Identities> S3Identities::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("no S3 identities file " + path);
  S3Identities out;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& e : j.at("identities")) {
      S3Identity id;
      id.name = e.value("name", "");
      id.access_key = e.at("access_key").get<std::string>();
      id.secret_key = e.at("secret_key").get<std::string>();
      id.token = e.value("token", "");
      id.uid = e.value("uid", 0u);
      id.gid = e.value("gid", 0u);
      if (e.contains("buckets")) id.buckets = e.at("buckets").get<std::vector<std::string>>();
      if (id.access_key.empty() || id.secret_key.empty()) {
        return Status::InvalidArgument(path + ": identity '" + id.name +
                                       "' needs access_key and secret_key");
      }
      out.list.push_back(std::move(id));
    }
  } catch (const std::exception& e) {
    // The parser's message may quote the file: do not pass it on.
    return Status::InvalidArgument(path + ": not an identities file ({\"identities\": [...]})");
  }
  return out;
}

namespace {

/// Writes `text` to `path` (mode 0600) atomically: a temporary file, fsync,
/// rename.
Status WritePrivate(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("open " + tmp, errno);
  const ssize_t n = ::write(fd, text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return Status::IOError("write " + path, e);
  }
  return Status::OK();
}

}  // namespace

S3Identity S3Identities::NewIdentity(const std::string& name) {
  S3Identity id;
  id.name = name;
  // 20 upper-case letters and digits like AWS access keys; a 40-hex secret.
  static const char* kKeyChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string raw(20, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), 20);
  id.access_key = "NFS";
  for (int i = 0; i < 17; ++i) id.access_key.push_back(kKeyChars[raw[i] & 31]);
  id.secret_key = RandomHex(20);
  id.token = RandomHex(24);
  return id;
}

Status S3Identities::Save(const std::string& path) const {
  nlohmann::json j;
  j["identities"] = nlohmann::json::array();
  for (const S3Identity& id : list) {
    j["identities"].push_back({{"name", id.name},
                               {"access_key", id.access_key},
                               {"secret_key", id.secret_key},
                               {"token", id.token},
                               {"uid", id.uid},
                               {"gid", id.gid},
                               {"buckets", id.buckets}});
  }
  return WritePrivate(path, j.dump(2) + "\n");
}

StatusOr<S3Identities> S3Identities::Create(const std::string& path,
                                            const std::string& credentials_path) {
  S3Identities out;
  out.list.push_back(NewIdentity("admin"));
  NEEDLEFS_RETURN_IF_ERROR(out.Save(path));
  if (!credentials_path.empty()) {
    const S3Identity& id = out.list[0];
    NEEDLEFS_RETURN_IF_ERROR(
        WritePrivate(credentials_path, "[default]\naws_access_key_id = " + id.access_key +
                                           "\naws_secret_access_key = " + id.secret_key + "\n"));
  }
  return out;
}

const S3Identity* S3Identities::FindToken(const std::string& token) const {
  if (token.empty()) return nullptr;
  const S3Identity* found = nullptr;
  for (const S3Identity& i : list) {
    if (i.token.size() == token.size() &&
        CRYPTO_memcmp(i.token.data(), token.data(), token.size()) == 0) {
      found = &i;
    }
  }
  return found;
}

const S3Identity* S3Identities::Find(const std::string& access_key) const {
  for (const S3Identity& i : list) {
    if (i.access_key == access_key) return &i;
  }
  return nullptr;
}

// ---- the gateway ----

class S3Gateway::Impl {
 public:
  Impl(FileSystem* fs, S3Identities ids, S3GatewayOptions o)
      : fs_(fs), ids_(std::make_shared<const S3Identities>(std::move(ids))), o_(std::move(o)) {}

  void SetIdentities(S3Identities ids) {
    auto next = std::make_shared<const S3Identities>(std::move(ids));
    std::lock_guard<std::mutex> g(ids_mu_);
    ids_ = std::move(next);
  }
  std::shared_ptr<const S3Identities> Identities() const {
    std::lock_guard<std::mutex> g(ids_mu_);
    return ids_;
  }

  S3Response Handle(S3Request& r) {
    const auto start = std::chrono::steady_clock::now();
    requests_.fetch_add(1, std::memory_order_relaxed);
    Call c{r, RandomHex(8)};
    S3Response resp = Route(c);
    if (resp.status >= 400) errors_.fetch_add(1, std::memory_order_relaxed);
    Count(OpName(c), resp.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    resp.headers.emplace_back("x-amz-request-id", c.request_id);
    resp.headers.emplace_back("Server", "NeedleFS");
    if (!c.body_done && r.content_length.value_or(0) > 0) resp.close = true;
    return resp;
  }

  uint64_t requests() const { return requests_.load(); }
  uint64_t errors() const { return errors_.load(); }

  /// Prometheus text: requests by operation and status class, seconds by
  /// operation (to the response's headers; a GET's body streams after).
  std::string MetricsText() const {
    std::lock_guard<std::mutex> g(ops_mu_);
    std::string out =
        "# TYPE needlefs_s3_requests_total counter\n# TYPE needlefs_s3_request_seconds_total "
        "counter\n";
    for (const auto& [key, n] : op_counts_) {
      out += "needlefs_s3_requests_total{op=\"" + key.first + "\",code=\"" + key.second + "\"} " +
             std::to_string(n) + "\n";
    }
    for (const auto& [op, secs] : op_seconds_) {
      out += "needlefs_s3_request_seconds_total{op=\"" + op + "\"} " + std::to_string(secs) + "\n";
    }
    out +=
        "# TYPE needlefs_s3_object_cache_hits_total counter\nneedlefs_s3_object_cache_hits_total " +
        std::to_string(cache_hits_.load()) + "\n";
    return out;
  }

 private:
  struct Call {
    S3Request& r;
    std::string request_id;
    std::map<std::string, std::string> query;
    std::string bucket, key;
    std::shared_ptr<const S3Identities> ids;  // the set `id` points into
    const S3Identity* id = nullptr;
    Authenticated auth;
    RequestContext ctx;
    bool body_done = false;
    bool plain = false;             ///< the REST face: text, not XML
    S3Identity anonymous_identity;  ///< `id` of an anonymous public read
    std::string Header(const std::string& name) const {
      auto it = r.headers.find(name);
      return it == r.headers.end() ? "" : it->second;
    }
    bool Has(const std::string& q) const { return query.count(q) > 0; }
  };

  /// The S3 operation a call is (for metrics), from its method, target
  /// and subresources.
  static std::string OpName(const Call& c) {
    const std::string& m = c.r.method;
    auto has = [&](const char* q) { return c.query.count(q) > 0; };
    if (c.bucket.empty()) return m == "GET" ? "ListBuckets" : "Other";
    if (c.key.empty()) {
      if (m == "PUT") return "CreateBucket";
      if (m == "DELETE") return "DeleteBucket";
      if (m == "HEAD") return "HeadBucket";
      if (m == "POST" && has("delete")) return "DeleteObjects";
      if (m != "GET") return "Other";
      if (has("location")) return "GetBucketLocation";
      if (has("uploads")) return "ListMultipartUploads";
      if (has("versions")) return "ListObjectVersions";
      return has("list-type") ? "ListObjectsV2" : "ListObjects";
    }
    if (has("tagging"))
      return m == "GET"   ? "GetObjectTagging"
             : m == "PUT" ? "PutObjectTagging"
                          : "DeleteObjectTagging";
    if (m == "POST" && has("uploads")) return "CreateMultipartUpload";
    if (has("uploadId")) {
      if (m == "PUT") return "UploadPart";
      if (m == "POST") return "CompleteMultipartUpload";
      if (m == "DELETE") return "AbortMultipartUpload";
      return "ListParts";
    }
    if (m == "PUT") return c.r.headers.count("x-amz-copy-source") ? "CopyObject" : "PutObject";
    if (m == "GET") return "GetObject";
    if (m == "HEAD") return "HeadObject";
    if (m == "DELETE") return "DeleteObject";
    return "Other";
  }

  void Count(const std::string& op, int status, double seconds) {
    std::lock_guard<std::mutex> g(ops_mu_);
    ++op_counts_[{op, std::to_string(status / 100) + "xx"}];
    op_seconds_[op] += seconds;
  }

  S3Response Err(const Call& c, int status, const std::string& code, const std::string& message) {
    S3Response resp;
    resp.status = status;
    if (c.plain && c.r.method != "HEAD") {
      resp.body = code + ": " + message + "\n";
      resp.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    } else if (c.r.method != "HEAD") {
      resp.body = std::string(kXmlHeader) + "<Error><Code>" + code + "</Code><Message>" +
                  XmlEscape(message) + "</Message><Resource>" + XmlEscape(c.r.raw_path) +
                  "</Resource><RequestId>" + c.request_id + "</RequestId></Error>";
      resp.headers.emplace_back("Content-Type", "application/xml");
    }
    return resp;
  }
  S3Response ErrOf(const Call& c, const Status& s, bool is_bucket) {
    // A source error of ours carries "Code: message".
    const std::string m(s.message());
    const size_t colon = m.find(": ");
    if (s.code() == StatusCode::kInvalidArgument && colon != std::string::npos && colon < 40 &&
        std::isupper(static_cast<unsigned char>(m[0]))) {
      const std::string code = m.substr(0, colon);
      const int status = code == "SignatureDoesNotMatch" ? 403 : 400;
      return Err(c, status, code, m.substr(colon + 2));
    }
    auto [status, code] = S3ErrorOf(s, is_bucket);
    return Err(c, status, code, m);
  }
  S3Response Xml(const std::string& body, int status = 200) {
    S3Response resp;
    resp.status = status;
    resp.body = std::string(kXmlHeader) + body;
    resp.headers.emplace_back("Content-Type", "application/xml");
    return resp;
  }

  /// Reads the (small) body of a call that is not an upload into *into
  /// (when not null), decoded and verified as an upload's would be (the
  /// signed hash, aws-chunked signatures), at most `max` bytes.
  Status Drain(Call& c, std::string* into = nullptr, size_t max = 1 << 20) {
    auto made = MakeBody(c, /*require_length=*/false);
    if (auto* e = std::get_if<S3Response>(&made)) {
      return S3Failure("InvalidRequest", "the request body cannot be read as announced (" +
                                             std::to_string(e->status) + ")");
    }
    Body& body = std::get<Body>(made);
    std::string piece;
    size_t total = 0;
    for (;;) {
      NEEDLEFS_RETURN_IF_ERROR(body.source(&piece));
      if (piece.empty()) break;
      total += piece.size();
      if (total > max)
        return S3Failure("MaxMessageLengthExceeded", "the request body is too large");
      if (into) *into += piece;
    }
    c.body_done = true;
    return Status::OK();
  }

  S3Response Route(Call& c) {
    S3Request& r = c.r;
    c.query = ParseQuery(r.raw_query);
    // Bucket and key: virtual-hosted style when Host is <bucket>.<domain>.
    std::string path = PercentDecode(r.raw_path);
    std::string host = c.Header("host");
    if (const size_t colon = host.rfind(':');
        colon != std::string::npos && host.find(']') == std::string::npos) {
      host.resize(colon);
    }
    if (!o_.domain.empty() && host.size() > o_.domain.size() + 1 &&
        host.compare(host.size() - o_.domain.size(), o_.domain.size(), o_.domain) == 0 &&
        host[host.size() - o_.domain.size() - 1] == '.') {
      c.bucket = host.substr(0, host.size() - o_.domain.size() - 1);
      c.key = path.size() > 1 ? path.substr(1) : "";
    } else {
      const size_t slash = path.find('/', 1);
      c.bucket =
          path.size() > 1 ? path.substr(1, slash == std::string::npos ? path.npos : slash - 1) : "";
      c.key = slash == std::string::npos ? "" : path.substr(slash + 1);
    }
    // Authentication.
    SignedRequest sr;
    sr.method = r.method;
    sr.raw_path = r.raw_path;
    sr.raw_query = r.raw_query;
    sr.headers = r.headers;
    bool anonymous = false;
    c.ids = Identities();
    const std::string authorization = c.Header("authorization");
    if (authorization.rfind("Bearer ", 0) == 0) {
      // The plain REST face: a token instead of a signature (use TLS in
      // front of it off the machine: the token travels as it is).
      c.plain = true;
      c.id = c.ids->FindToken(authorization.substr(7));
      if (!c.id) return Err(c, 403, "AccessDenied", "unknown bearer token");
      c.auth.access_key = c.id->access_key;
      c.auth.payload = PayloadMode::kUnsigned;
      for (const auto& [name, value] : r.headers) {
        (void)value;
        if (name.rfind("x-amz-content-sha256", 0) == 0 || name == "x-amz-decoded-content-length") {
          return Err(c, 400, "InvalidRequest", "a bearer request sends its body as it is");
        }
      }
      return Authorized(c);
    }
    auto v = Verify(
        sr,
        [&c](const std::string& ak) -> std::optional<std::string> {
          const S3Identity* id = c.ids->Find(ak);
          if (!id) return std::nullopt;
          return id->secret_key;
        },
        static_cast<int64_t>(std::time(nullptr)), &anonymous);
    if (auto* e = std::get_if<AuthError>(&v)) {
      if (anonymous && PublicRead(c)) return Anonymous(c);
      return Err(c, e->http_status, e->code, e->message);
    }
    c.auth = std::get<Authenticated>(v);
    c.id = c.ids->Find(c.auth.access_key);
    return Authorized(c);
  }

  /// The mode of the files S3 writes into `bucket` (its directory's
  /// kBucketFileModeXattr, else the gateway's), looked up at most once a
  /// second per bucket. A value that does not parse gives 0600 (never more
  /// open than asked); meta's failure fails the write (503), uncached.
  StatusOr<uint32_t> FileModeOf(InodeId bucket) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> g(mode_mu_);
      auto it = bucket_modes_.find(bucket.value);
      if (it != bucket_modes_.end() && now < it->second.second) return it->second.first;
    }
    uint32_t mode = o_.file_mode;
    auto v = fs_->GetXattr(RequestContext::Root(), bucket, kBucketFileModeXattr);
    if (v.ok()) {
      std::string text = *v;
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.pop_back();
      auto m = ParseFileMode(text);
      if (m.ok()) {
        mode = *m;
      } else {
        spdlog::warn("s3.bucket_mode_invalid bucket_ino={} value_bytes={}: files get 0600",
                     bucket.value, v->size());
        mode = 0600;
      }
    } else if (v.status().posix_errno() != ENODATA) {
      return v.status();
    }
    std::lock_guard<std::mutex> g(mode_mu_);
    if (bucket_modes_.size() > 10'000) bucket_modes_.clear();
    bucket_modes_[bucket.value] = {mode, now + std::chrono::seconds(1)};
    return mode;
  }

  /// Whether an unsigned request may read: a GET or HEAD in a bucket marked
  /// public-read (the user.s3.public-read xattr of its directory, set by
  /// `needlefs admin s3.bucket.public`).
  bool PublicRead(const Call& c) {
    if (c.bucket.empty() || !ValidBucketName(c.bucket)) return false;
    if (c.r.method != "GET" && c.r.method != "HEAD") return false;
    const RequestContext root = RequestContext::Root();
    auto dir = fs_->Lookup(root, fs_->root(), c.bucket);
    if (!dir.ok() || dir->type != FileType::kDirectory) return false;
    auto flag = fs_->GetXattr(root, dir->ino, "user.s3.public-read");
    return flag.ok() && *flag == "true";
  }

  /// An anonymous read of a public-read bucket: as the nobody identity
  /// (uid/gid 65534), so the files' own permissions still apply.
  S3Response Anonymous(Call& c) {
    for (const char* sub : {"uploads", "uploadId", "tagging", "versions", "location"}) {
      if (c.Has(sub)) return Err(c, 403, "AccessDenied", "anonymous requests read objects only");
    }
    c.anonymous_identity.name = "anonymous";
    c.anonymous_identity.uid = 65534;
    c.anonymous_identity.gid = 65534;
    c.anonymous_identity.buckets = {c.bucket};
    c.id = &c.anonymous_identity;
    c.auth.payload = PayloadMode::kUnsigned;
    return Authorized(c);
  }

  /// The rest of Route once `c.id` is known.
  S3Response Authorized(Call& c) {
    S3Request& r = c.r;
    c.ctx.uid = c.id->uid;
    c.ctx.gid = c.id->gid;
    c.ctx.sync = true;
    if (!c.bucket.empty() && !ValidBucketName(c.bucket)) {
      // Never a path: ".", "..", ".needlefs-uploads" and the like.
      return c.key.empty() && r.method == "PUT"
                 ? Err(c, 400, "InvalidBucketName", "bucket names are 3-63 of a-z 0-9 . - _")
                 : Err(c, 404, "NoSuchBucket", "The specified bucket does not exist");
    }
    if (!c.bucket.empty() && !MayUse(*c.id, c.bucket)) {
      return Err(c, 403, "AccessDenied", "this identity may not use bucket " + c.bucket);
    }
    if (c.bucket.empty()) {
      if (r.method == "GET") return ListBuckets(c);
      return Err(c, 405, "MethodNotAllowed", "the service accepts GET only");
    }
    if (c.key.empty()) return BucketCall(c);
    if (std::string why = KeyProblem(c.key); !why.empty()) {
      return Err(c, 400, c.key.size() > kMaxKeyBytes ? "KeyTooLongError" : "InvalidArgument",
                 "key '" + c.key + "': " + why);
    }
    return ObjectCall(c);
  }

  static bool MayUse(const S3Identity& id, const std::string& bucket) {
    for (const std::string& b : id.buckets) {
      if (b == "*" || b == bucket) return true;
    }
    return false;
  }

  // ---- buckets ----

  S3Response ListBuckets(Call& c) {
    auto all = ReadAll(c.ctx, fs_->root());
    if (!all.ok()) return ErrOf(c, all.status(), true);
    std::string xml = std::string("<ListAllMyBucketsResult xmlns=\"") + kNs + "\"><Owner><ID>" +
                      XmlEscape(c.id->name) + "</ID><DisplayName>" + XmlEscape(c.id->name) +
                      "</DisplayName></Owner><Buckets>";
    for (const DirEntry& e : *all) {
      if (e.type != FileType::kDirectory || !ValidBucketName(e.name) || !MayUse(*c.id, e.name)) {
        continue;
      }
      xml += "<Bucket><Name>" + XmlEscape(e.name) + "</Name><CreationDate>" +
             IsoTime(e.attr ? e.attr->ctime_ns : 0) + "</CreationDate></Bucket>";
    }
    xml += "</Buckets></ListAllMyBucketsResult>";
    return Xml(xml);
  }

  S3Response BucketCall(Call& c) {
    const std::string& m = c.r.method;
    for (const char* unsupported :
         {"versioning", "policy", "cors", "lifecycle", "acl", "website", "encryption",
          "object-lock", "replication", "logging", "notification", "tagging", "accelerate",
          "requestPayment", "ownershipControls", "publicAccessBlock"}) {
      if (c.Has(unsupported)) {
        return Err(c, 501, "NotImplemented",
                   std::string("?") + unsupported + " is not supported (docs/s3.md)");
      }
    }
    if (m == "PUT") {
      if (!ValidBucketName(c.bucket)) {
        return Err(c, 400, "InvalidBucketName", "bucket names are 3-63 of a-z 0-9 . - _");
      }
      if (Status s = Drain(c); !s.ok()) return ErrOf(c, s, true);
      auto made = fs_->Mkdir(c.ctx, fs_->root(), c.bucket, o_.dir_mode);
      if (!made.ok()) {
        if (made.status().posix_errno() == EEXIST) {
          return Err(c, 409, "BucketAlreadyOwnedByYou", "bucket " + c.bucket + " exists");
        }
        return ErrOf(c, made.status(), true);
      }
      S3Response resp;
      resp.headers.emplace_back("Location", "/" + c.bucket);
      return resp;
    }
    auto dir = BucketDir(c);
    if (!dir.ok()) return ErrOf(c, dir.status(), true);
    if (m == "HEAD") {
      S3Response resp;
      resp.headers.emplace_back("x-amz-bucket-region", o_.region);
      return resp;
    }
    if (m == "DELETE") {
      Status s = fs_->Rmdir(c.ctx, fs_->root(), c.bucket);
      if (s.posix_errno() == ENOTEMPTY) {
        return Err(c, 409, "BucketNotEmpty", "the bucket you tried to delete is not empty");
      }
      if (!s.ok()) return ErrOf(c, s, true);
      S3Response resp;
      resp.status = 204;
      return resp;
    }
    if (m == "GET" && c.Has("location")) {
      return Xml(std::string("<LocationConstraint xmlns=\"") + kNs + "\">" +
                 (o_.region == "us-east-1" ? "" : XmlEscape(o_.region)) + "</LocationConstraint>");
    }
    if (m == "GET" && c.Has("uploads")) return ListMultipartUploads(c);
    if (m == "GET" && c.Has("versions")) return ListObjects(c, dir->ino, true);
    if (m == "GET" && c.plain) return PlainList(c, dir->ino);
    if (m == "GET") return ListObjects(c, dir->ino);
    if (m == "POST" && c.Has("delete")) return DeleteObjects(c, dir->ino);
    return Err(c, 405, "MethodNotAllowed", m + " is not allowed on a bucket");
  }

  StatusOr<InodeAttr> BucketDir(const Call& c) {
    auto a = fs_->Lookup(c.ctx, fs_->root(), c.bucket);
    if (!a.ok()) return a.status();
    if (a->type != FileType::kDirectory) return Status::Posix(ENOENT, "not a bucket");
    return a;
  }

  /// Every entry of `dir` with attributes.
  StatusOr<std::vector<DirEntry>> ReadAll(const RequestContext& ctx, InodeId dir) {
    std::vector<DirEntry> all;
    uint64_t cookie = 0;
    for (;;) {
      auto page = fs_->ReadDir(ctx, dir, cookie, 1024, true);
      if (!page.ok()) return page.status();
      for (DirEntry& e : page->entries) {
        cookie = e.cookie;
        all.push_back(std::move(e));
      }
      if (page->eof || page->entries.empty()) break;
    }
    return all;
  }

  // ---- objects ----

  /// The parent directory of `key` below the bucket, made when `create`.
  StatusOr<InodeAttr> ParentDir(const Call& c, InodeId bucket, const std::string& key, bool create,
                                std::string* leaf) {
    std::string_view k(key);
    if (k.back() == '/') k.remove_suffix(1);
    const size_t last = k.rfind('/');
    *leaf = std::string(last == k.npos ? k : k.substr(last + 1));
    auto dir = fs_->GetAttr(bucket);
    if (!dir.ok()) return dir.status();
    if (last == k.npos) return dir;
    size_t at = 0;
    while (at < last) {
      const size_t slash = k.find('/', at);
      const std::string seg(k.substr(at, slash - at));
      auto next = fs_->Lookup(c.ctx, dir->ino, seg);
      if (!next.ok() && next.status().posix_errno() == ENOENT && create) {
        next = fs_->Mkdir(c.ctx, dir->ino, seg, o_.dir_mode);
        if (!next.ok() && next.status().posix_errno() == EEXIST) {
          next = fs_->Lookup(c.ctx, dir->ino, seg);  // made by another request meanwhile
        }
      }
      if (!next.ok()) return next.status();
      if (next->type != FileType::kDirectory) {
        return Status::Posix(ENOTDIR, "a prefix of the key is an object");
      }
      dir = std::move(next);
      at = slash + 1;
    }
    return dir;
  }

  S3Response ObjectCall(Call& c) {
    for (const char* unsupported :
         {"acl", "retention", "legal-hold", "torrent", "restore", "select", "attributes"}) {
      if (c.Has(unsupported)) {
        return Err(c, 501, "NotImplemented",
                   std::string("?") + unsupported + " is not supported yet (docs/s3.md)");
      }
    }
    auto bucket = BucketDir(c);
    if (!bucket.ok()) return ErrOf(c, bucket.status(), true);
    const std::string& m = c.r.method;
    if (c.Has("tagging")) return ObjectTagging(c, bucket->ino);
    if (m == "POST" && c.Has("uploads")) return CreateMultipartUpload(c, bucket->ino);
    if (c.Has("uploadId")) {
      if (m == "PUT" && c.Has("partNumber")) return UploadPart(c);
      if (m == "POST") return CompleteMultipartUpload(c, bucket->ino);
      if (m == "DELETE") return AbortMultipartUpload(c);
      if (m == "GET") return ListParts(c);
      return Err(c, 405, "MethodNotAllowed", m + " is not allowed with uploadId");
    }
    if (m == "PUT") {
      if (!c.Header("x-amz-copy-source").empty()) return CopyObject(c, bucket->ino);
      return PutObject(c, bucket->ino);
    }
    if (m == "GET" || m == "HEAD") return GetObject(c, bucket->ino);
    if (m == "DELETE") return DeleteObject(c, bucket->ino);
    return Err(c, 405, "MethodNotAllowed", m + " is not allowed on an object");
  }

  /// The object at `key`: a regular file (NoSuchKey otherwise).
  StatusOr<InodeAttr> FindObject(const Call& c, InodeId bucket, const std::string& key) {
    std::string leaf;
    auto dir = ParentDir(c, bucket, key, false, &leaf);
    if (!dir.ok()) {
      if (dir.status().posix_errno() == ENOTDIR) return Status::Posix(ENOENT, "no such key");
      return dir.status();
    }
    auto a = fs_->Lookup(c.ctx, dir->ino, leaf);
    if (!a.ok()) return a.status();
    if (key.back() == '/') {
      if (a->type == FileType::kDirectory) return a;  // a directory key
      return Status::Posix(ENOENT, "no such key");
    }
    if (a->type != FileType::kRegular) return Status::Posix(ENOENT, "no such key");
    return a;
  }

  /// The ETag of regular file `a` (quoted): kept in an xattr with the size
  /// and mtime it belongs to; computed (MD5 of the data) and kept when
  /// missing or stale.
  StatusOr<std::string> EtagOf(const InodeAttr& a, const RequestContext& reader) {
    if (a.type == FileType::kDirectory) return std::string("\"d41d8cd98f00b204e9800998ecf8427e\"");
    const RequestContext root = RequestContext::Root();
    const std::string stamp = std::to_string(a.size) + ":" + std::to_string(a.mtime_ns) + ":";
    auto kept = fs_->GetXattr(root, a.ino, kEtagXattr);
    if (kept.ok() && kept->rfind(stamp, 0) == 0) return "\"" + kept->substr(stamp.size()) + "\"";
    if (!fs_->Access(reader, a.ino, R_OK).ok()) {
      // A caller that may not read the file learns no digest of it: a
      // stand-in that still changes whenever the file does.
      return "\"" + Hex(Sha256(std::to_string(a.ino.value) + stamp)).substr(0, 32) + "\"";
    }
    BodyDigests d("");
    Status s = fs_->ReadTo(reader, a.ino, 0, [&](std::string_view piece) {
      d.Update(piece);
      return Status::OK();
    });
    if (!s.ok()) return s;
    d.Finish();
    const std::string etag = Hex(d.md5());
    (void)fs_->SetXattr(root, a.ino, kEtagXattr, stamp + etag, 0);
    return "\"" + etag + "\"";
  }

  /// A request body as PutObject and UploadPart take it: decoded by its
  /// payload mode, hashed as it streams, and checked at its end against
  /// every promise the request made (length, Content-MD5,
  /// x-amz-content-sha256, an x-amz-checksum-* header or trailer); a failed
  /// check is the source's error, so nothing is kept.
  struct Body {
    std::string algo;  ///< checksum algorithm ("" = none)
    std::shared_ptr<BodyDigests> digests;
    std::function<Status(std::string*)> source;
  };

  /// Builds the Body of `c`, or an error response.
  std::variant<Body, S3Response> MakeBody(Call& c, bool require_length = true) {
    Body b;
    std::string checksum_header;
    for (const char* a : kChecksumAlgos) {
      if (!c.Header(std::string("x-amz-checksum-") + a).empty()) checksum_header = a;
    }
    std::string trailer = c.Header("x-amz-trailer");
    std::transform(trailer.begin(), trailer.end(), trailer.begin(), ::tolower);
    b.algo = checksum_header;
    if (trailer.rfind("x-amz-checksum-", 0) == 0) b.algo = trailer.substr(15);
    if (!b.algo.empty() && std::find(std::begin(kChecksumAlgos), std::end(kChecksumAlgos),
                                     b.algo) == std::end(kChecksumAlgos)) {
      return Err(c, 400, "InvalidRequest", "unknown checksum algorithm " + b.algo);
    }
    const bool chunked =
        c.auth.payload != PayloadMode::kSha256 && c.auth.payload != PayloadMode::kUnsigned;
    if (!chunked && !c.r.content_length && require_length) {
      return Err(c, 411, "MissingContentLength", "PUT needs a Content-Length");
    }
    std::optional<uint64_t> decoded_length;
    if (chunked) {
      const std::string dl = c.Header("x-amz-decoded-content-length");
      if (dl.empty() || dl.size() > 19 || !std::all_of(dl.begin(), dl.end(), ::isdigit)) {
        return Err(c, 411, "MissingContentLength",
                   "aws-chunked needs x-amz-decoded-content-length");
      }
      decoded_length = std::stoull(dl);
    }
    std::shared_ptr<AwsChunkedDecoder> decoder;
    if (chunked) decoder = std::make_shared<AwsChunkedDecoder>(c.auth, c.r.body);
    std::function<Status(std::string*)> data =
        chunked ? std::function<Status(std::string*)>(
                      [decoder](std::string* p) { return decoder->Next(p); })
                : c.r.body;
    b.digests = std::make_shared<BodyDigests>(b.algo);
    const uint64_t want = decoded_length.value_or(c.r.content_length.value_or(0));
    b.source = [&c, data, decoder, digests = b.digests, algo = b.algo, checksum_header,
                want](std::string* piece) -> Status {
      NEEDLEFS_RETURN_IF_ERROR(data(piece));
      if (!piece->empty()) {
        digests->Update(*piece);
        return Status::OK();
      }
      c.body_done = true;
      digests->Finish();
      if (digests->bytes() != want) {
        return S3Failure("IncompleteBody", "the body has " + std::to_string(digests->bytes()) +
                                               " bytes, not the " + std::to_string(want) +
                                               " announced");
      }
      const std::string content_md5 = c.Header("content-md5");
      if (!content_md5.empty() && Unbase64(content_md5) != digests->md5()) {
        return S3Failure(Unbase64(content_md5) ? "BadDigest" : "InvalidDigest",
                         "the Content-MD5 you specified did not match what we received");
      }
      if (c.auth.payload == PayloadMode::kSha256 &&
          Hex(digests->sha256()) != c.auth.payload_sha256_hex) {
        return S3Failure("XAmzContentSHA256Mismatch",
                         "the x-amz-content-sha256 does not match the body");
      }
      if (!algo.empty()) {
        std::string expected;
        if (!checksum_header.empty()) {
          expected = c.Header("x-amz-checksum-" + algo);
        } else if (decoder && decoder->trailers().count("x-amz-checksum-" + algo)) {
          expected = decoder->trailers().at("x-amz-checksum-" + algo);
        }
        if (expected.empty()) {
          return S3Failure("InvalidRequest", "the x-amz-checksum-" + algo + " trailer is missing");
        }
        if (expected != digests->Checksum()) {
          return S3Failure("BadDigest", "the " + algo + " checksum does not match the body");
        }
      }
      return Status::OK();
    };
    return b;
  }

  S3Response PutObject(Call& c, InodeId bucket) {
    const std::string& key = c.key;
    auto made_body = MakeBody(c);
    if (auto* e = std::get_if<S3Response>(&made_body)) return std::move(*e);
    Body& body = std::get<Body>(made_body);
    const std::string& algo = body.algo;
    BodyDigests& digests = *body.digests;
    auto& source = body.source;
    std::string leaf;
    auto dir = ParentDir(c, bucket, key, true, &leaf);
    if (!dir.ok()) return ErrOf(c, dir.status(), false);
    if (key.back() == '/') {
      // A directory key: an empty body makes the directory.
      std::string piece;
      Status s = source(&piece);
      if (s.ok() && !piece.empty()) {
        return Err(c, 400, "InvalidRequest",
                   "a key ending in '/' is a directory: its body must be empty");
      }
      if (!s.ok()) return ErrOf(c, s, false);
      auto made = fs_->Mkdir(c.ctx, dir->ino, leaf, o_.dir_mode);
      if (!made.ok() && made.status().posix_errno() != EEXIST)
        return ErrOf(c, made.status(), false);
      S3Response resp;
      resp.headers.emplace_back("ETag", "\"" + Hex(digests.md5()) + "\"");
      return resp;
    }
    const bool if_none_match = c.Header("if-none-match") == "*";
    const std::string if_match = c.Header("if-match");
    if (!if_match.empty()) {
      auto old = fs_->Lookup(c.ctx, dir->ino, leaf);
      if (!old.ok() || old->type != FileType::kRegular) {
        return Err(c, 404, "NoSuchKey", "If-Match: no object to match");
      }
      auto etag = EtagOf(*old, c.ctx);
      if (!etag.ok() || (if_match != "*" && *etag != if_match)) {
        return Err(c, 412, "PreconditionFailed",
                   "At least one of the pre-conditions you specified did not hold");
      }
    }
    auto mode = FileModeOf(bucket);
    if (!mode.ok()) return ErrOf(c, mode.status(), false);
    // What the object carries besides its bytes goes on before it shows
    // under its key (the body's digests are final once `source` ended).
    const RequestContext root = RequestContext::Root();
    std::string etag;
    auto finish = [&](InodeId ino) {
      etag = Hex(digests.md5());
      SaveMetadata(c, ino, root, true);
      KeepEtag(ino, etag);
      if (!algo.empty()) {
        (void)fs_->SetXattr(root, ino, "user.s3.checksum-" + algo, digests.Checksum(), 0);
      }
      return Status::OK();
    };
    auto written = fs_->ReplaceFile(c.ctx, dir->ino, leaf, *mode, source, nullptr,
                                    if_none_match ? kRenameNoReplace : 0, finish);
    if (!written.ok()) {
      if (if_none_match && written.status().posix_errno() == EEXIST) {
        return Err(c, 412, "PreconditionFailed",
                   "At least one of the pre-conditions you specified did not hold");
      }
      if (written.status().posix_errno() == EISDIR) {
        return Err(c, 409, "InvalidRequest",
                   "key " + key + " is a directory (a prefix of other keys)");
      }
      return ErrOf(c, written.status(), false);
    }
    S3Response resp;
    resp.headers.emplace_back("ETag", "\"" + etag + "\"");
    if (!algo.empty()) resp.headers.emplace_back("x-amz-checksum-" + algo, digests.Checksum());
    return resp;
  }

  /// Content-Type, x-amz-meta-* and x-amz-tagging of the request as xattrs
  /// of `ino`; s3fs's x-amz-meta-mode/uid/gid/mtime and rclone's
  /// x-amz-meta-mtime (seconds, with a fraction) become the file's real
  /// attributes (a change the identity may not make is left out).
  /// `posix` false (an upload in progress): everything stays an xattr.
  void SaveMetadata(const Call& c, InodeId ino, const RequestContext& root, bool posix) {
    const std::string type = c.Header("content-type");
    if (!type.empty()) (void)fs_->SetXattr(root, ino, kContentTypeXattr, type, 0);
    const std::string tagging = c.Header("x-amz-tagging");
    if (!tagging.empty()) (void)fs_->SetXattr(root, ino, kTaggingXattr, tagging, 0);
    SetAttrRequest attrs;
    bool any = false;
    for (const auto& [name, value] : c.r.headers) {
      if (name.rfind("x-amz-meta-", 0) != 0 || name.size() <= 11) continue;
      const std::string key = name.substr(11);
      // Reported from the real attributes.
      if (posix && IsPosixMeta(key)) {
        any = PosixMeta(key, value, &attrs) || any;
        continue;
      }
      (void)fs_->SetXattr(root, ino, kMetaXattrPrefix + key, value, 0);
    }
    if (any) ApplyPosixMeta(c, ino, attrs);
  }

  /// Whether x-amz-meta-`key` is one that becomes a real attribute.
  static bool IsPosixMeta(const std::string& key) {
    return key == "mtime" || key == "mode" || key == "uid" || key == "gid";
  }

  /// Adds x-amz-meta-`key` (IsPosixMeta) with `value` to `*attrs`: mtime as
  /// "1700000000" (s3fs) or "1700000000.123456789" (rclone), mode, uid and
  /// gid in decimal. false when the value is not one.
  static bool PosixMeta(const std::string& key, const std::string& value, SetAttrRequest* attrs) {
    auto number = [](const std::string& v) {
      return !v.empty() && v.size() < 19 && std::all_of(v.begin(), v.end(), ::isdigit);
    };
    if (key == "mtime") {
      const size_t dot = value.find('.');
      const std::string sec = value.substr(0, dot);
      std::string frac = dot == std::string::npos ? "" : value.substr(dot + 1, 9);
      // At most 10 digits: seconds * 1e9 stays within int64 (year 2286).
      if (!number(sec) || sec.size() > 10 || (!frac.empty() && !number(frac))) return false;
      frac.resize(9, '0');
      attrs->mtime_ns = std::stoll(sec) * 1'000'000'000 + std::stoll(frac);
      return true;
    }
    if (!number(value)) return false;
    const uint64_t n = std::stoull(value);
    if (key == "mode") attrs->mode = static_cast<uint32_t>(n & 07777);
    if (key == "uid") attrs->uid = static_cast<uint32_t>(n);
    if (key == "gid") attrs->gid = static_cast<uint32_t>(n);
    return true;
  }

  /// Sets `attrs` on `ino` as the caller (a change the identity may not
  /// make is left out, as s3fs does).
  void ApplyPosixMeta(const Call& c, InodeId ino, const SetAttrRequest& attrs) {
    // Ownership apart: s3fs sends the local uid/gid, which an identity
    // that is not root may not give; its mode and mtime still apply.
    SetAttrRequest own, rest = attrs;
    std::swap(own.uid, rest.uid);
    std::swap(own.gid, rest.gid);
    for (const SetAttrRequest* r : {&rest, &own}) {
      if (!r->mode && !r->mtime_ns && !r->uid && !r->gid) continue;
      auto a = fs_->SetAttr(c.ctx, ino, *r);
      if (!a.ok()) spdlog::debug("s3.posix_meta_not_applied: {}", a.status().ToString());
    }
  }

  /// Writes the ETag of `ino` (with the size and mtime it now has).
  void KeepEtag(InodeId ino, const std::string& etag_hex) {
    auto a = fs_->GetAttr(ino);
    if (!a.ok()) return;
    (void)fs_->SetXattr(
        RequestContext::Root(), ino, kEtagXattr,
        std::to_string(a->size) + ":" + std::to_string(a->mtime_ns) + ":" + etag_hex, 0);
  }

  /// The object x-amz-copy-source names (checked like any request's bucket
  /// and key, and the x-amz-copy-source-if-* conditions), or an error.
  std::variant<InodeAttr, S3Response> CopySource(Call& c) {
    std::string raw_src = c.Header("x-amz-copy-source");
    if (const size_t q = raw_src.find('?'); q != std::string::npos) raw_src.resize(q);
    std::string src = PercentDecode(raw_src);
    if (!src.empty() && src[0] == '/') src.erase(0, 1);
    const size_t slash = src.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == src.size()) {
      return Err(c, 400, "InvalidArgument", "x-amz-copy-source must be bucket/key");
    }
    Call from{c.r, c.request_id};
    from.bucket = src.substr(0, slash);
    from.key = src.substr(slash + 1);
    from.ctx = c.ctx;
    from.id = c.id;
    if (!ValidBucketName(from.bucket)) return Err(c, 404, "NoSuchBucket", "the source bucket");
    if (!MayUse(*c.id, from.bucket)) return Err(c, 403, "AccessDenied", "the source bucket");
    if (std::string why = KeyProblem(from.key); !why.empty()) {
      return Err(c, 400, "InvalidArgument", "source key: " + why);
    }
    auto from_bucket = BucketDir(from);
    if (!from_bucket.ok()) return ErrOf(c, from_bucket.status(), true);
    auto obj = FindObject(from, from_bucket->ino, from.key);
    if (!obj.ok()) return ErrOf(c, obj.status(), false);
    auto etag = EtagOf(*obj, c.ctx);
    if (!etag.ok()) return ErrOf(c, etag.status(), false);
    if (S3Response pre; Preconditions(c, *obj, *etag, "x-amz-copy-source-", &pre)) return pre;
    return *obj;
  }

  S3Response CopyObject(Call& c, InodeId bucket) {
    if (Status s = Drain(c); !s.ok()) return ErrOf(c, s, false);
    auto source = CopySource(c);
    if (auto* e = std::get_if<S3Response>(&source)) return std::move(*e);
    const InodeAttr* obj = &std::get<InodeAttr>(source);
    std::string leaf;
    auto dir = ParentDir(c, bucket, c.key, true, &leaf);
    if (!dir.ok()) return ErrOf(c, dir.status(), false);
    uint64_t offset = 0;
    BodyDigests d("");
    auto mode = FileModeOf(bucket);
    if (!mode.ok()) return ErrOf(c, mode.status(), false);
    const RequestContext root = RequestContext::Root();
    std::string new_etag;
    // The metadata (copied, or the request's) and the ETag go on before
    // the copy shows under its key.
    auto finish = [&](InodeId ino) {
      d.Finish();
      new_etag = Hex(d.md5());
      if (c.Header("x-amz-metadata-directive") == "REPLACE") {
        SaveMetadata(c, ino, root, true);
      } else {
        auto names = fs_->ListXattr(root, obj->ino);
        if (names.ok()) {
          for (const std::string& n : *names) {
            if (n == kContentTypeXattr || n.rfind(kMetaXattrPrefix, 0) == 0) {
              auto v = fs_->GetXattr(root, obj->ino, n);
              if (v.ok()) (void)fs_->SetXattr(root, ino, n, *v, 0);
            }
          }
        }
      }
      KeepEtag(ino, new_etag);
      return Status::OK();
    };
    auto written = fs_->ReplaceFile(
        c.ctx, dir->ino, leaf, *mode,
        [&](std::string* piece) {
          auto got = fs_->Read(c.ctx, obj->ino, offset, 4 << 20);
          if (!got.ok()) return got.status();
          offset += got->size();
          d.Update(*got);
          *piece = std::move(*got);
          return Status::OK();
        },
        nullptr, 0, finish);
    if (!written.ok()) return ErrOf(c, written.status(), false);
    return Xml(std::string("<CopyObjectResult xmlns=\"") + kNs + "\"><LastModified>" +
               IsoTime(written->mtime_ns) + "</LastModified><ETag>&quot;" + new_etag +
               "&quot;</ETag></CopyObjectResult>");
  }

  /// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since (with
  /// `prefix`, e.g. "x-amz-copy-source-"): true and *resp when one fails.
  bool Preconditions(const Call& c, const InodeAttr& a, const std::string& etag,
                     const std::string& prefix, S3Response* resp) {
    const bool copy = !prefix.empty();
    const std::string im = c.Header(prefix + "if-match");
    const std::string inm = c.Header(prefix + "if-none-match");
    const std::string ims = c.Header(prefix + "if-modified-since");
    const std::string ius = c.Header(prefix + "if-unmodified-since");
    const int64_t mtime = a.mtime_ns / 1'000'000'000;
    auto matches = [&](const std::string& list) {
      size_t at = 0;
      while (at < list.size()) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        std::string one = list.substr(at, comma - at);
        one.erase(0, one.find_first_not_of(' '));
        one.erase(one.find_last_not_of(' ') + 1);
        if (one == "*" || one == etag || "\"" + one + "\"" == etag) return true;
        at = comma + 1;
      }
      return false;
    };
    auto failed = [&] {
      *resp = Err(c, 412, "PreconditionFailed",
                  "At least one of the pre-conditions you specified did not hold");
      return true;
    };
    if (!im.empty() && !matches(im)) return failed();
    if (im.empty() && !ius.empty()) {
      const int64_t t = ParseHttpDate(ius);
      if (t >= 0 && mtime > t) return failed();
    }
    if (!inm.empty() && matches(inm)) {
      if (copy || (c.r.method != "GET" && c.r.method != "HEAD")) return failed();
      resp->status = 304;
      resp->headers.emplace_back("ETag", etag);
      return true;
    }
    if (inm.empty() && !ims.empty()) {
      const int64_t t = ParseHttpDate(ims);
      if (t >= 0 && mtime <= t) {
        if (copy) return failed();
        resp->status = 304;
        resp->headers.emplace_back("ETag", etag);
        return true;
      }
    }
    return false;
  }

  S3Response GetObject(Call& c, InodeId bucket) {
    auto a = FindObject(c, bucket, c.key);
    if (!a.ok()) return ErrOf(c, a.status(), false);
    if (a->type == FileType::kDirectory) {
      // A directory key ("a/b/"): an empty object.
      S3Response resp;
      resp.headers.emplace_back("ETag", "\"d41d8cd98f00b204e9800998ecf8427e\"");
      resp.headers.emplace_back("Content-Type", "application/x-directory");
      resp.headers.emplace_back("Last-Modified", HttpDate(a->mtime_ns));
      resp.headers.emplace_back("Content-Length", "0");
      return resp;
    }
    // Meta's attributes now (the directory cache's may be a moment old):
    // what the answer says, who may read it, and what the object cache is
    // checked against.
    auto fresh = fs_->GetAttr(a->ino);
    if (!fresh.ok()) {
      DropObject(a->ino);
      return ErrOf(c, fresh.status(), false);
    }
    *a = *fresh;
    if (!MayAccess(c.ctx, *a, R_OK)) return Err(c, 403, "AccessDenied", "Access Denied");
    // A small object seen before: what it answers besides its bytes (and
    // the bytes) come from the object cache when those attributes still
    // match (every change of its data, attributes or xattrs moves them).
    std::shared_ptr<const ObjectInfo> info = CachedObject(*a);
    if (!info) {
      auto loaded = LoadObject(c, *a);
      if (!loaded.ok()) return ErrOf(c, loaded.status(), false);
      info = std::move(*loaded);
    }
    const std::string* etag = &info->etag;
    S3Response resp;
    if (Preconditions(c, *a, *etag, "", &resp)) return resp;
    uint64_t begin = 0, end = a->size;  // [begin, end)
    const std::string range = c.Header("range");
    if (!range.empty() && a->size > 0) {
      // One range: bytes=a-b, bytes=a-, bytes=-n.
      bool ok = range.rfind("bytes=", 0) == 0 && range.find(',') == std::string::npos;
      const std::string spec = ok ? range.substr(6) : "";
      const size_t dash = spec.find('-');
      ok = ok && dash != std::string::npos;
      const std::string first = ok ? spec.substr(0, dash) : "",
                        last = ok ? spec.substr(dash + 1) : "";
      auto digits = [](const std::string& s) {
        return !s.empty() && s.size() < 20 && std::all_of(s.begin(), s.end(), ::isdigit);
      };
      if (ok && first.empty() && digits(last)) {
        const uint64_t n = std::stoull(last);
        if (n == 0) return Err(c, 416, "InvalidRange", "The requested range is not satisfiable");
        begin = a->size > n ? a->size - n : 0;
      } else if (ok && digits(first) && (last.empty() || digits(last))) {
        begin = std::stoull(first);
        if (!last.empty()) end = std::min<uint64_t>(a->size, std::stoull(last) + 1);
        if (!last.empty() && std::stoull(last) < begin) ok = false;  // ignored, as S3 does
        if (begin >= a->size) {
          resp = Err(c, 416, "InvalidRange", "The requested range is not satisfiable");
          resp.headers.emplace_back("Content-Range", "bytes */" + std::to_string(a->size));
          return resp;
        }
      } else {
        ok = false;
      }
      if (!ok) {
        begin = 0;
        end = a->size;
      } else {
        resp.status = 206;
        resp.headers.emplace_back("Content-Range", "bytes " + std::to_string(begin) + "-" +
                                                       std::to_string(end - 1) + "/" +
                                                       std::to_string(a->size));
      }
    }
    std::string type = info->type;
    if (info->tag_count > 0) {
      resp.headers.emplace_back("x-amz-tagging-count", std::to_string(info->tag_count));
    }
    for (const auto& [name, value] : info->meta)
      resp.headers.emplace_back("x-amz-meta-" + name, value);
    if (c.Header("x-amz-checksum-mode") == "ENABLED") {
      for (const auto& [algo, value] : info->checksums) {
        resp.headers.emplace_back("x-amz-checksum-" + algo, value);
      }
    }
    // response-* query overrides (presigned GETs use them).
    for (const auto& [q, h] : std::vector<std::pair<std::string, std::string>>{
             {"response-content-type", "Content-Type"},
             {"response-content-disposition", "Content-Disposition"},
             {"response-content-encoding", "Content-Encoding"},
             {"response-content-language", "Content-Language"},
             {"response-cache-control", "Cache-Control"},
             {"response-expires", "Expires"}}) {
      auto it = c.query.find(q);
      if (it == c.query.end()) continue;
      if (h == "Content-Type") {
        type = it->second;
      } else {
        resp.headers.emplace_back(h, it->second);
      }
    }
    // What s3fs and rclone keep in x-amz-meta-*, from the real attributes
    // (a later chmod or touch through NFS or FUSE shows).
    resp.headers.emplace_back(
        "x-amz-meta-mtime",
        std::to_string(a->mtime_ns / 1'000'000'000) + "." +
            std::to_string(1'000'000'000 + a->mtime_ns % 1'000'000'000).substr(1));
    resp.headers.emplace_back("x-amz-meta-mode", std::to_string(a->StMode()));
    resp.headers.emplace_back("x-amz-meta-uid", std::to_string(a->uid));
    resp.headers.emplace_back("x-amz-meta-gid", std::to_string(a->gid));
    resp.headers.emplace_back("Content-Type", type);
    resp.headers.emplace_back("ETag", *etag);
    resp.headers.emplace_back("Last-Modified", HttpDate(a->mtime_ns));
    resp.headers.emplace_back("Accept-Ranges", "bytes");
    resp.stream_length = end - begin;
    if (c.r.method == "HEAD") {
      resp.headers.emplace_back("Content-Length", std::to_string(end - begin));
      return resp;
    }
    if (info->body) {
      std::shared_ptr<const std::string> body = info->body;
      resp.stream = [body, begin, end](const std::function<Status(std::string_view)>& write) {
        return write(std::string_view(*body).substr(begin, end - begin));
      };
      return resp;
    }
    const InodeId ino = a->ino;
    const RequestContext ctx = c.ctx;
    FileSystem* fs = fs_;
    // A whole small object read here is kept with its headers.
    const bool keep =
        begin == 0 && end == a->size && a->size <= kMaxCachedBody && o_.object_cache_bytes > 0;
    resp.stream = [this, fs, ctx, ino, begin, end, keep,
                   info](const std::function<Status(std::string_view)>& write) {
      uint64_t at = begin;
      std::string kept;
      static const Status kEnough = Status::Aborted("range sent");
      Status s = fs->ReadTo(ctx, ino, begin, [&](std::string_view piece) {
        const uint64_t n = std::min<uint64_t>(piece.size(), end - at);
        NEEDLEFS_RETURN_IF_ERROR(write(piece.substr(0, n)));
        if (keep) kept.append(piece.substr(0, n));
        at += n;
        return at >= end ? kEnough : Status::OK();
      });
      if (!s.ok() && !(s.code() == StatusCode::kAborted && at >= end)) return s;
      if (at < end) return Status::DataLoss("the object got shorter while it was sent");
      if (keep) KeepBody(info, std::move(kept));
      return Status::OK();
    };
    return resp;
  }

  // ---- the object cache ----
  //
  // What a GET or HEAD of an object answers besides its bytes (ETag,
  // Content-Type, tag count, x-amz-meta-*, checksums), and the bytes of
  // small objects, kept per inode. An entry answers only while meta's
  // attributes of the inode, asked at the request, are the ones it was
  // made from: every acknowledged change of the data, attributes or
  // xattrs through any front end moves them (size, mtime, ctime, mode,
  // owner, generation) before it is acknowledged, so a hit is never older
  // than the last write (where the change stream could only tell later).
  // A hit costs one GetAttr instead of the xattr calls and the data.

  struct ObjectInfo {
    InodeAttr attr;    ///< what it was made from
    std::string etag;  ///< quoted
    std::string type;
    int tag_count = 0;
    std::vector<std::pair<std::string, std::string>> meta;       ///< x-amz-meta-<name>
    std::vector<std::pair<std::string, std::string>> checksums;  ///< x-amz-checksum-<algo>
    std::shared_ptr<const std::string> body;                     ///< the whole object, or null
  };

  static bool SameObject(const InodeAttr& x, const InodeAttr& y) {
    return x.ino == y.ino && x.generation == y.generation && x.size == y.size &&
           x.mtime_ns == y.mtime_ns && x.ctime_ns == y.ctime_ns && x.mode == y.mode &&
           x.uid == y.uid && x.gid == y.gid;
  }

  /// The cached entry of `a` (meta's attributes, asked now), if it was
  /// made from the same attributes.
  std::shared_ptr<const ObjectInfo> CachedObject(const InodeAttr& a) {
    if (o_.object_cache_bytes == 0) return nullptr;
    std::shared_ptr<const ObjectInfo> e;
    {
      std::lock_guard<std::mutex> g(cache_mu_);
      auto it = objects_.find(a.ino.value);
      if (it == objects_.end()) return nullptr;
      e = it->second;
    }
    if (!SameObject(a, e->attr)) {
      DropObject(a.ino);
      return nullptr;
    }
    cache_hits_.fetch_add(1, std::memory_order_relaxed);
    return e;
  }

  /// Reads what `a` answers besides its bytes, and keeps it (a reader's
  /// entry only: a caller that may not read gets no digest to share).
  StatusOr<std::shared_ptr<const ObjectInfo>> LoadObject(const Call& c, const InodeAttr& a) {
    auto info = std::make_shared<ObjectInfo>();
    info->attr = a;
    auto etag = EtagOf(a, c.ctx);
    if (!etag.ok()) return etag.status();
    info->etag = *etag;
    const RequestContext root = RequestContext::Root();
    info->type = "binary/octet-stream";
    if (auto t = fs_->GetXattr(root, a.ino, kContentTypeXattr); t.ok()) info->type = *t;
    auto names = fs_->ListXattr(root, a.ino);
    if (names.ok()) {
      for (const std::string& n : *names) {
        if (n == kTaggingXattr) {
          if (auto v = fs_->GetXattr(root, a.ino, n); v.ok() && !v->empty()) {
            info->tag_count = static_cast<int>(std::count(v->begin(), v->end(), '&') + 1);
          }
        }
        const std::string meta =
            n.rfind(kMetaXattrPrefix, 0) == 0 ? n.substr(std::strlen(kMetaXattrPrefix)) : "";
        if (!meta.empty() && !IsPosixMeta(meta)) {
          if (auto v = fs_->GetXattr(root, a.ino, n); v.ok()) info->meta.emplace_back(meta, *v);
        }
        if (n.rfind("user.s3.checksum-", 0) == 0) {
          if (auto v = fs_->GetXattr(root, a.ino, n); v.ok()) {
            info->checksums.emplace_back(n.substr(17), *v);
          }
        }
      }
    }
    // Only a reader's (a caller that may not read gets no digest to share),
    // and only small headers (xattrs can be many and large).
    if (o_.object_cache_bytes > 0 && MayAccess(c.ctx, a, R_OK) &&
        EntryBytes(*info) <= kMaxCachedHeaders) {
      std::lock_guard<std::mutex> g(cache_mu_);
      if (objects_.size() >= kMaxCachedObjects ||
          cached_bytes_ + EntryBytes(*info) > o_.object_cache_bytes) {
        ClearObjectsLocked();
      }
      auto& slot = objects_[a.ino.value];
      if (slot) cached_bytes_ -= EntryBytes(*slot);
      slot = info;
      cached_bytes_ += EntryBytes(*info);
    }
    return std::shared_ptr<const ObjectInfo>(std::move(info));
  }

  /// The memory an entry holds, about: its strings and body.
  static uint64_t EntryBytes(const ObjectInfo& e) {
    uint64_t n = sizeof(ObjectInfo) + e.etag.size() + e.type.size();
    for (const auto& [k, v] : e.meta) n += k.size() + v.size() + 64;
    for (const auto& [k, v] : e.checksums) n += k.size() + v.size() + 64;
    if (e.body) n += e.body->size();
    return n;
  }

  /// Adds the whole bytes of the object `info` describes to its entry,
  /// when the entry is still `info`.
  void KeepBody(const std::shared_ptr<const ObjectInfo>& info, std::string body) {
    auto with = std::make_shared<ObjectInfo>(*info);
    with->body = std::make_shared<const std::string>(std::move(body));
    std::lock_guard<std::mutex> g(cache_mu_);
    auto it = objects_.find(info->attr.ino.value);
    if (it == objects_.end() || it->second != info) return;
    cached_bytes_ -= EntryBytes(*info);
    if (cached_bytes_ + EntryBytes(*with) > o_.object_cache_bytes) {
      objects_.erase(it);  // no room for the bytes: the entry goes
      return;
    }
    cached_bytes_ += EntryBytes(*with);
    it->second = std::move(with);
  }

  void DropObject(InodeId ino) {
    std::lock_guard<std::mutex> g(cache_mu_);
    auto it = objects_.find(ino.value);
    if (it == objects_.end()) return;
    cached_bytes_ -= EntryBytes(*it->second);
    objects_.erase(it);
  }

  void ClearObjectsLocked() {
    objects_.clear();
    cached_bytes_ = 0;
  }

  /// Removes `key` (a missing one is fine, as in S3) and then the
  /// directories above it that became empty, up to the bucket.
  Status RemoveKey(const Call& c, InodeId bucket, const std::string& key) {
    std::string leaf;
    auto dir = ParentDir(c, bucket, key, false, &leaf);
    if (!dir.ok()) {
      const int e = dir.status().posix_errno();
      return e == ENOENT || e == ENOTDIR ? Status::OK() : dir.status();
    }
    Status s =
        key.back() == '/' ? fs_->Rmdir(c.ctx, dir->ino, leaf) : fs_->Unlink(c.ctx, dir->ino, leaf);
    if (s.posix_errno() == ENOENT || s.posix_errno() == ENOTEMPTY) s = Status::OK();
    if (s.posix_errno() == EISDIR) s = Status::OK();  // "a/b" when a/b is a directory: no object
    if (!s.ok()) return s;
    // Prune empty parents (key "a/b/c" -> a/b, then a).
    std::string_view k(key);
    if (k.back() == '/') k.remove_suffix(1);
    for (size_t last = k.rfind('/'); last != k.npos && last > 0; last = k.rfind('/')) {
      k = k.substr(0, last);
      std::string parent_leaf;
      auto parent = ParentDir(c, bucket, std::string(k), false, &parent_leaf);
      if (!parent.ok()) break;
      if (!fs_->Rmdir(c.ctx, parent->ino, parent_leaf).ok()) break;
    }
    return Status::OK();
  }

  S3Response DeleteObject(Call& c, InodeId bucket) {
    const std::string if_match = c.Header("if-match");
    if (!if_match.empty()) {
      auto a = FindObject(c, bucket, c.key);
      if (!a.ok()) return ErrOf(c, a.status(), false);
      auto etag = EtagOf(*a, c.ctx);
      if (!etag.ok()) return ErrOf(c, etag.status(), false);
      if (if_match != "*" && if_match != *etag) {
        return Err(c, 412, "PreconditionFailed",
                   "At least one of the pre-conditions you specified did not hold");
      }
    }
    Status s = RemoveKey(c, bucket, c.key);
    if (!s.ok()) return ErrOf(c, s, false);
    S3Response resp;
    resp.status = 204;
    return resp;
  }

  S3Response DeleteObjects(Call& c, InodeId bucket) {
    std::string body;
    if (Status s = Drain(c, &body, 2 << 20); !s.ok()) return ErrOf(c, s, false);
    const std::string content_md5 = c.Header("content-md5");
    if (!content_md5.empty()) {
      unsigned char md[MD5_DIGEST_LENGTH];
      MD5(reinterpret_cast<const unsigned char*>(body.data()), body.size(), md);
      if (Unbase64(content_md5) != std::string(reinterpret_cast<char*>(md), sizeof(md))) {
        return Err(c, 400, "BadDigest",
                   "the Content-MD5 you specified did not match what we received");
      }
    }
    const bool quiet = body.find("<Quiet>true</Quiet>") != std::string::npos;
    std::string xml = std::string("<DeleteResult xmlns=\"") + kNs + "\">";
    size_t at = 0, n = 0;
    while ((at = body.find("<Key>", at)) != std::string::npos) {
      const size_t end = body.find("</Key>", at);
      if (end == std::string::npos) break;
      std::string key = body.substr(at + 5, end - at - 5);
      at = end + 6;
      key = XmlUnescape(std::move(key));
      if (++n > 1000) return Err(c, 400, "MalformedXML", "at most 1000 keys per request");
      Status s = KeyProblem(key).empty() ? RemoveKey(c, bucket, key)
                                         : S3Failure("InvalidArgument", KeyProblem(key));
      if (s.ok()) {
        if (!quiet) xml += "<Deleted><Key>" + XmlEscape(key) + "</Key></Deleted>";
      } else {
        auto [status, code] = S3ErrorOf(s, false);
        (void)status;
        xml += "<Error><Key>" + XmlEscape(key) + "</Key><Code>" + code + "</Code><Message>" +
               XmlEscape(std::string(s.message())) + "</Message></Error>";
      }
    }
    xml += "</DeleteResult>";
    return Xml(xml);
  }

  // ---- multipart uploads ----
  //
  // An upload is a directory /.needlefs-uploads/<upload id> (outside every
  // bucket, so NFS and FUSE never see parts in a bucket) holding its parts
  // "part-00001"...; its bucket, key and the object's metadata are xattrs.
  // Complete composes the parts into a new file without copying data
  // (FileSystem::Compose) and renames it over the key.

  static constexpr const char* kUploadsDir = ".needlefs-uploads";

  /// The uploads directory (made on first use, root only).
  StatusOr<InodeAttr> UploadsDir(bool create) {
    const RequestContext root = RequestContext::Root();
    auto d = fs_->Lookup(root, fs_->root(), kUploadsDir);
    if (!d.ok() && d.status().posix_errno() == ENOENT && create) {
      d = fs_->Mkdir(root, fs_->root(), kUploadsDir, 0700);
      if (!d.ok() && d.status().posix_errno() == EEXIST)
        d = fs_->Lookup(root, fs_->root(), kUploadsDir);
    }
    return d;
  }

  /// The upload `c` names (uploadId), checked to belong to its bucket and key.
  std::variant<InodeAttr, S3Response> FindUpload(Call& c) {
    const std::string id = c.query["uploadId"];
    const bool valid = id.size() == 32 &&
                       std::all_of(id.begin(), id.end(), [](char ch) { return HexDigit(ch) >= 0; });
    auto none = [&] {
      return Err(c, 404, "NoSuchUpload",
                 "The specified upload does not exist. The upload ID may be invalid, or the "
                 "upload may have been aborted or completed.");
    };
    if (!valid) return none();
    auto uploads = UploadsDir(false);
    if (!uploads.ok()) return none();
    const RequestContext root = RequestContext::Root();
    auto u = fs_->Lookup(root, uploads->ino, id);
    if (!u.ok()) return none();
    auto b = fs_->GetXattr(root, u->ino, "user.s3.bucket");
    auto k = fs_->GetXattr(root, u->ino, "user.s3.key");
    if (!b.ok() || !k.ok() || *b != c.bucket || *k != c.key) return none();
    return *u;
  }

  static std::string PartName(int n) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "part-%05d", n);
    return buf;
  }

  S3Response CreateMultipartUpload(Call& c, InodeId bucket) {
    if (Status s = Drain(c); !s.ok()) return ErrOf(c, s, false);
    // Parts are written as the gateway: the caller must be able to write
    // in the bucket at all.
    if (Status s = fs_->Access(c.ctx, bucket, W_OK | X_OK); !s.ok()) return ErrOf(c, s, false);
    if (c.key.back() == '/') return Err(c, 400, "InvalidRequest", "a directory key has no parts");
    auto uploads = UploadsDir(true);
    if (!uploads.ok()) return ErrOf(c, uploads.status(), false);
    const RequestContext root = RequestContext::Root();
    const std::string id = RandomHex(16);
    auto u = fs_->Mkdir(root, uploads->ino, id, 0700);
    if (!u.ok()) return ErrOf(c, u.status(), false);
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"user.s3.bucket", c.bucket}, {"user.s3.key", c.key}}) {
      if (Status s = fs_->SetXattr(root, u->ino, name, value, 0); !s.ok()) {
        return ErrOf(c, s, false);
      }
    }
    SaveMetadata(c, u->ino, root, false);
    return Xml(std::string("<InitiateMultipartUploadResult xmlns=\"") + kNs + "\"><Bucket>" +
               XmlEscape(c.bucket) + "</Bucket><Key>" + XmlEscape(c.key) + "</Key><UploadId>" + id +
               "</UploadId></InitiateMultipartUploadResult>");
  }

  S3Response UploadPart(Call& c) {
    const std::string& pn = c.query["partNumber"];
    if (pn.empty() || pn.size() > 5 || !std::all_of(pn.begin(), pn.end(), ::isdigit) ||
        std::stoi(pn) < 1 || std::stoi(pn) > 10000) {
      return Err(c, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000");
    }
    auto u = FindUpload(c);
    if (auto* e = std::get_if<S3Response>(&u)) return std::move(*e);
    const InodeAttr upload = std::get<InodeAttr>(u);
    if (!c.Header("x-amz-copy-source").empty()) return UploadPartCopy(c, upload, std::stoi(pn));
    auto made_body = MakeBody(c);
    if (auto* e = std::get_if<S3Response>(&made_body)) return std::move(*e);
    Body& body = std::get<Body>(made_body);
    const RequestContext root = RequestContext::Root();
    auto part = fs_->ReplaceFile(root, upload.ino, PartName(std::stoi(pn)), 0600, body.source);
    if (!part.ok()) return ErrOf(c, part.status(), false);
    const std::string etag = Hex(body.digests->md5());
    (void)fs_->SetXattr(
        root, part->ino, kEtagXattr,
        std::to_string(part->size) + ":" + std::to_string(part->mtime_ns) + ":" + etag, 0);
    S3Response resp;
    resp.headers.emplace_back("ETag", "\"" + etag + "\"");
    if (!body.algo.empty()) {
      resp.headers.emplace_back("x-amz-checksum-" + body.algo, body.digests->Checksum());
    }
    return resp;
  }

  /// UploadPart from (a range of) an existing object
  /// (x-amz-copy-source[-range]): the bytes are read and written as a new
  /// part.
  S3Response UploadPartCopy(Call& c, const InodeAttr& upload, int part) {
    if (Status s = Drain(c); !s.ok()) return ErrOf(c, s, false);
    auto source = CopySource(c);
    if (auto* e = std::get_if<S3Response>(&source)) return std::move(*e);
    const InodeAttr obj = std::get<InodeAttr>(source);
    uint64_t begin = 0, end = obj.size;
    const std::string range = c.Header("x-amz-copy-source-range");
    if (!range.empty()) {
      // bytes=first-last, both given, inside the object.
      const size_t dash = range.find('-');
      const std::string a = range.rfind("bytes=", 0) == 0 && dash != std::string::npos
                                ? range.substr(6, dash - 6)
                                : "";
      const std::string b = dash != std::string::npos ? range.substr(dash + 1) : "";
      auto digits = [](const std::string& x) {
        return !x.empty() && x.size() < 19 && std::all_of(x.begin(), x.end(), ::isdigit);
      };
      if (!digits(a) || !digits(b) || std::stoull(b) < std::stoull(a) ||
          std::stoull(b) >= obj.size) {
        return Err(c, 400, "InvalidArgument",
                   "x-amz-copy-source-range must be bytes=first-last within the source");
      }
      begin = std::stoull(a);
      end = std::stoull(b) + 1;
    }
    uint64_t at = begin;
    BodyDigests d("");
    const RequestContext root = RequestContext::Root();
    auto written =
        fs_->ReplaceFile(root, upload.ino, PartName(part), 0600, [&](std::string* piece) {
          piece->clear();
          if (at >= end) return Status::OK();
          auto got = fs_->Read(c.ctx, obj.ino, at, std::min<uint64_t>(4 << 20, end - at));
          if (!got.ok()) return got.status();
          if (got->empty()) return Status::DataLoss("the source got shorter while it was copied");
          at += got->size();
          d.Update(*got);
          *piece = std::move(*got);
          return Status::OK();
        });
    if (!written.ok()) return ErrOf(c, written.status(), false);
    d.Finish();
    const std::string etag = Hex(d.md5());
    KeepEtag(written->ino, etag);
    return Xml(std::string("<CopyPartResult xmlns=\"") + kNs + "\"><LastModified>" +
               IsoTime(written->mtime_ns) + "</LastModified><ETag>&quot;" + etag +
               "&quot;</ETag></CopyPartResult>");
  }

  /// The parts of an upload: number -> attributes, sorted.
  StatusOr<std::map<int, InodeAttr>> Parts(InodeId upload) {
    auto all = ReadAll(RequestContext::Root(), upload);
    if (!all.ok()) return all.status();
    std::map<int, InodeAttr> parts;
    for (const DirEntry& e : *all) {
      if (e.name.rfind("part-", 0) == 0 && e.name.size() == 10 && e.attr &&
          std::all_of(e.name.begin() + 5, e.name.end(), ::isdigit)) {
        parts[std::stoi(e.name.substr(5))] = *e.attr;
      }
    }
    return parts;
  }

  S3Response CompleteMultipartUpload(Call& c, InodeId bucket) {
    std::string xml;
    if (Status s = Drain(c, &xml, 4 << 20); !s.ok()) return ErrOf(c, s, false);
    auto u = FindUpload(c);
    if (auto* e = std::get_if<S3Response>(&u)) return std::move(*e);
    const InodeAttr upload = std::get<InodeAttr>(u);
    auto have = Parts(upload.ino);
    if (!have.ok()) return ErrOf(c, have.status(), false);
    // <Part><PartNumber>n</PartNumber><ETag>"..."</ETag></Part>, ascending.
    std::vector<std::string> names;
    std::string md5s;
    int last = 0;
    size_t at = 0;
    const RequestContext root = RequestContext::Root();
    while ((at = xml.find("<Part>", at)) != std::string::npos) {
      const size_t end = xml.find("</Part>", at);
      if (end == std::string::npos) break;
      const std::string part = xml.substr(at, end - at);
      at = end;
      auto field = [&](const std::string& tag) {
        const size_t b = part.find("<" + tag + ">");
        const size_t e = part.find("</" + tag + ">");
        return b == std::string::npos || e == std::string::npos
                   ? std::string()
                   : part.substr(b + tag.size() + 2, e - b - tag.size() - 2);
      };
      const std::string num = field("PartNumber");
      std::string etag = field("ETag");
      for (const std::string ent : {"&quot;", "&#34;"}) {
        for (size_t p = 0; (p = etag.find(ent, p)) != std::string::npos;)
          etag.replace(p, ent.size(), "\"");
      }
      if (num.empty() || num.size() > 5 || !std::all_of(num.begin(), num.end(), ::isdigit)) {
        return Err(c, 400, "MalformedXML", "a Part without a valid PartNumber");
      }
      const int n = std::stoi(num);
      if (n <= last) {
        return Err(c, 400, "InvalidPartOrder",
                   "The list of parts was not in ascending order. Parts must be ordered by part "
                   "number.");
      }
      last = n;
      auto it = have->find(n);
      if (it == have->end()) {
        return Err(c, 400, "InvalidPart", "part " + num + " was not uploaded");
      }
      auto kept = EtagOf(it->second, RequestContext::Root());
      if (!kept.ok()) return ErrOf(c, kept.status(), false);
      if (etag.empty() || (etag != *kept && "\"" + etag + "\"" != *kept)) {
        return Err(c, 400, "InvalidPart", "part " + num + "'s ETag does not match");
      }
      if (!names.empty() && have->at(std::stoi(names.back().substr(5))).size < (5u << 20)) {
        return Err(c, 400, "EntityTooSmall",
                   "Your proposed upload is smaller than the minimum allowed object size (5 MiB "
                   "for every part but the last).");
      }
      names.push_back(PartName(n));
      const std::string hex = kept->substr(1, kept->size() - 2);
      for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        md5s.push_back(static_cast<char>(HexDigit(hex[i]) * 16 + HexDigit(hex[i + 1])));
      }
    }
    if (names.empty()) {
      return Err(c, 400, "MalformedXML", "You must specify at least one part");
    }
    // The object: a new file composed of the parts, renamed over the key.
    std::string leaf;
    auto dir = ParentDir(c, bucket, c.key, true, &leaf);
    if (!dir.ok()) return ErrOf(c, dir.status(), false);
    const std::string tmp = std::string(kTmpPrefix) + RandomHex(8);
    auto mode = FileModeOf(bucket);
    if (!mode.ok()) return ErrOf(c, mode.status(), false);
    auto target = fs_->CreateFile(c.ctx, dir->ino, tmp, *mode, CreateHow::kGuarded);
    if (!target.ok()) return ErrOf(c, target.status(), false);
    // The parts are the gateway's (root's); the target was made with the
    // caller's identity, which checked its right to write there.
    auto composed = fs_->Compose(RequestContext::Root(), target->ino, upload.ino, names);
    const bool if_none_match = c.Header("if-none-match") == "*";
    Status st = composed.status();
    unsigned char md5_of_md5s[MD5_DIGEST_LENGTH];
    MD5(reinterpret_cast<const unsigned char*>(md5s.data()), md5s.size(), md5_of_md5s);
    const std::string etag =
        Hex(std::string(reinterpret_cast<const char*>(md5_of_md5s), sizeof(md5_of_md5s))) + "-" +
        std::to_string(names.size());
    if (st.ok()) {
      // Before the object shows under its key: the metadata given at
      // CreateMultipartUpload (s3fs's and rclone's mode/uid/gid/mtime
      // become its real attributes, as with a PutObject; the rest is
      // copied), then the ETag, stamped with the final mtime.
      SetAttrRequest posix;
      bool any_posix = false;
      if (auto names_x = fs_->ListXattr(root, upload.ino); names_x.ok()) {
        for (const std::string& n : *names_x) {
          if (n != kContentTypeXattr && n.rfind(kMetaXattrPrefix, 0) != 0) continue;
          auto v = fs_->GetXattr(root, upload.ino, n);
          if (!v.ok()) continue;
          const std::string key =
              n == kContentTypeXattr ? "" : n.substr(std::strlen(kMetaXattrPrefix));
          if (IsPosixMeta(key)) {
            any_posix = PosixMeta(key, *v, &posix) || any_posix;
            continue;
          }
          (void)fs_->SetXattr(root, composed->ino, n, *v, 0);
        }
      }
      if (any_posix) ApplyPosixMeta(c, composed->ino, posix);
      KeepEtag(composed->ino, etag);
      st = fs_->Rename(c.ctx, dir->ino, tmp, dir->ino, leaf, if_none_match ? kRenameNoReplace : 0);
    }
    if (!st.ok()) {
      (void)fs_->Unlink(c.ctx, dir->ino, tmp);
      if (if_none_match && st.posix_errno() == EEXIST) {
        return Err(c, 412, "PreconditionFailed",
                   "At least one of the pre-conditions you specified did not hold");
      }
      return ErrOf(c, st, false);
    }
    RemoveUpload(upload.ino);
    return Xml(std::string("<CompleteMultipartUploadResult xmlns=\"") + kNs + "\"><Location>/" +
               XmlEscape(c.bucket) + "/" + XmlEscape(c.key) + "</Location><Bucket>" +
               XmlEscape(c.bucket) + "</Bucket><Key>" + XmlEscape(c.key) + "</Key><ETag>&quot;" +
               etag + "&quot;</ETag></CompleteMultipartUploadResult>");
  }

  /// Removes an upload directory with whatever parts are left in it.
  void RemoveUpload(InodeId upload) {
    const RequestContext root = RequestContext::Root();
    if (auto all = ReadAll(root, upload); all.ok()) {
      for (const DirEntry& e : *all) (void)fs_->Unlink(root, upload, e.name);
    }
    auto uploads = UploadsDir(false);
    if (!uploads.ok()) return;
    if (auto all = ReadAll(root, uploads->ino); all.ok()) {
      for (const DirEntry& e : *all) {
        if (e.ino == upload) (void)fs_->Rmdir(root, uploads->ino, e.name);
      }
    }
  }

  S3Response AbortMultipartUpload(Call& c) {
    auto u = FindUpload(c);
    if (auto* e = std::get_if<S3Response>(&u)) return std::move(*e);
    RemoveUpload(std::get<InodeAttr>(u).ino);
    S3Response resp;
    resp.status = 204;
    return resp;
  }

  S3Response ListParts(Call& c) {
    auto u = FindUpload(c);
    if (auto* e = std::get_if<S3Response>(&u)) return std::move(*e);
    auto parts = Parts(std::get<InodeAttr>(u).ino);
    if (!parts.ok()) return ErrOf(c, parts.status(), false);
    int marker = 0;
    if (c.query.count("part-number-marker")) {
      const std::string& m = c.query["part-number-marker"];
      if (!m.empty() && m.size() < 6 && std::all_of(m.begin(), m.end(), ::isdigit))
        marker = std::stoi(m);
    }
    size_t max = 1000;
    if (c.query.count("max-parts")) {
      const std::string& m = c.query["max-parts"];
      if (!m.empty() && m.size() < 6 && std::all_of(m.begin(), m.end(), ::isdigit)) {
        max = std::min<size_t>(1000, std::stoul(m));
      }
    }
    std::string xml = std::string("<ListPartsResult xmlns=\"") + kNs + "\"><Bucket>" +
                      XmlEscape(c.bucket) + "</Bucket><Key>" + XmlEscape(c.key) +
                      "</Key><UploadId>" + c.query["uploadId"] + "</UploadId><PartNumberMarker>" +
                      std::to_string(marker) + "</PartNumberMarker>";
    std::string body;
    size_t n = 0;
    int next = marker;
    bool truncated = false;
    for (const auto& [num, attr] : *parts) {
      if (num <= marker) continue;
      if (n == max) {
        truncated = true;
        break;
      }
      auto etag = EtagOf(attr, RequestContext::Root());
      body += "<Part><PartNumber>" + std::to_string(num) + "</PartNumber><LastModified>" +
              IsoTime(attr.mtime_ns) + "</LastModified><ETag>" +
              XmlEscape(etag.ok() ? *etag : "\"\"") + "</ETag><Size>" + std::to_string(attr.size) +
              "</Size></Part>";
      next = num;
      ++n;
    }
    xml += "<NextPartNumberMarker>" + std::to_string(next) + "</NextPartNumberMarker><MaxParts>" +
           std::to_string(max) + "</MaxParts><IsTruncated>" + (truncated ? "true" : "false") +
           "</IsTruncated>" + body + "</ListPartsResult>";
    return Xml(xml);
  }

  S3Response ListMultipartUploads(Call& c) {
    std::string xml = std::string("<ListMultipartUploadsResult xmlns=\"") + kNs + "\"><Bucket>" +
                      XmlEscape(c.bucket) + "</Bucket><KeyMarker></KeyMarker><UploadIdMarker>" +
                      "</UploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>false" +
                      "</IsTruncated>";
    const std::string prefix = c.query.count("prefix") ? c.query["prefix"] : "";
    const RequestContext root = RequestContext::Root();
    std::vector<std::pair<std::string, std::string>> found;  // key, id
    if (auto uploads = UploadsDir(false); uploads.ok()) {
      auto all = ReadAll(root, uploads->ino);
      if (!all.ok()) return ErrOf(c, all.status(), false);
      for (const DirEntry& e : *all) {
        auto b = fs_->GetXattr(root, e.ino, "user.s3.bucket");
        auto k = fs_->GetXattr(root, e.ino, "user.s3.key");
        if (b.ok() && k.ok() && *b == c.bucket && k->rfind(prefix, 0) == 0) {
          found.emplace_back(*k, e.name);
        }
      }
    }
    std::sort(found.begin(), found.end());
    for (const auto& [key, id] : found) {
      xml += "<Upload><Key>" + XmlEscape(key) + "</Key><UploadId>" + id +
             "</UploadId><StorageClass>STANDARD</StorageClass></Upload>";
    }
    xml += "</ListMultipartUploadsResult>";
    return Xml(xml);
  }

  // ---- listings ----

  struct Listing {
    std::string prefix, delimiter, after;  // keys <= after are skipped
    size_t max = 1000;
    std::vector<ListedObject> objects;
    std::vector<std::string> prefixes;
    std::string last;  // the last key or prefix returned
    bool truncated = false;
    size_t count() const { return objects.size() + prefixes.size(); }
  };

  /// Adds common prefix `p` unless already there; false when the listing is
  /// full (then it is truncated).
  bool AddPrefix(Listing& l, const std::string& p) {
    if (!l.prefixes.empty() && l.prefixes.back() == p) return true;
    if (p <= l.after) return true;
    if (l.count() >= l.max) {
      l.truncated = true;
      return false;
    }
    l.prefixes.push_back(p);
    l.last = p;
    return true;
  }

  /// Depth-first over `dir` (whose keys start with `dir_key`), in key
  /// order: entries are sorted by name, a directory's as name + "/", which
  /// is the order of the full keys. False once the listing is full.
  Status Walk(const Call& c, Listing& l, InodeId dir, const std::string& dir_key, bool* more) {
    auto all = ReadAll(c.ctx, dir);
    if (!all.ok()) return all.status();
    std::vector<std::pair<std::string, DirEntry*>> sorted;
    for (DirEntry& e : *all) {
      if (e.name.rfind(kTmpPrefix, 0) == 0) continue;
      if (e.type != FileType::kDirectory && e.type != FileType::kRegular) continue;
      sorted.emplace_back(dir_key + e.name + (e.type == FileType::kDirectory ? "/" : ""), &e);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [key, e] : sorted) {
      if (!*more) return Status::OK();
      const bool is_dir = e->type == FileType::kDirectory;
      if (is_dir) {
        // Only subtrees that can hold keys after `after` with the prefix.
        const bool toward_prefix = l.prefix.size() > key.size() && l.prefix.rfind(key, 0) == 0;
        const bool in_prefix = key.rfind(l.prefix, 0) == 0;
        if (!toward_prefix && !in_prefix) continue;
        if (!toward_prefix && key < l.after && l.after.rfind(key, 0) != 0) continue;
        if (in_prefix && !l.delimiter.empty()) {
          const size_t d = key.find(l.delimiter, l.prefix.size());
          if (d != std::string::npos && d + l.delimiter.size() <= key.size()) {
            // Every key below shares this common prefix.
            const std::string p = key.substr(0, d + l.delimiter.size());
            if (l.after.rfind(p, 0) == 0 && l.after.size() >= p.size())
              continue;  // returned before
            if (!AddPrefix(l, p)) {
              *more = false;
              return Status::OK();
            }
            continue;
          }
        }
        if (in_prefix && e->attr && e->attr->size == 0) {
          // An empty directory is the object "key/" (a directory marker, as
          // PUT of "key/" makes); a directory with entries shows through them.
          if (key <= l.after) continue;
          if (l.count() >= l.max) {
            l.truncated = true;
            *more = false;
            return Status::OK();
          }
          InodeAttr marker = *e->attr;
          marker.size = 0;
          l.objects.push_back({key, marker});
          l.last = key;
          continue;
        }
        NEEDLEFS_RETURN_IF_ERROR(Walk(c, l, e->ino, key, more));
        continue;
      }
      if (key.rfind(l.prefix, 0) != 0 || key <= l.after) continue;
      if (!l.delimiter.empty()) {
        const size_t d = key.find(l.delimiter, l.prefix.size());
        if (d != std::string::npos) {
          const std::string p = key.substr(0, d + l.delimiter.size());
          if (l.after.rfind(p, 0) == 0) continue;
          if (!AddPrefix(l, p)) {
            *more = false;
            return Status::OK();
          }
          continue;
        }
      }
      if (l.count() >= l.max) {
        l.truncated = true;
        *more = false;
        return Status::OK();
      }
      l.objects.push_back({key, e->attr ? *e->attr : InodeAttr{}});
      l.last = key;
    }
    return Status::OK();
  }

  /// ListObjects v1/v2, or (`versions`) ListObjectVersions of an
  /// unversioned bucket: every object as its one "null" version.
  S3Response ListObjects(Call& c, InodeId bucket, bool versions = false) {
    const bool v2 = !versions && c.query.count("list-type") && c.query["list-type"] == "2";
    Listing l;
    l.prefix = c.query.count("prefix") ? c.query["prefix"] : "";
    l.delimiter = c.query.count("delimiter") ? c.query["delimiter"] : "";
    if (c.query.count("max-keys")) {
      const std::string& m = c.query["max-keys"];
      if (m.empty() || m.size() > 9 || !std::all_of(m.begin(), m.end(), ::isdigit)) {
        return Err(c, 400, "InvalidArgument", "max-keys must be a number");
      }
      l.max = std::min<size_t>(1000, std::stoul(m));
    }
    const bool url = c.query.count("encoding-type") && c.query["encoding-type"] == "url";
    std::string token;
    if (v2) {
      if (c.query.count("continuation-token")) {
        auto t = Unbase64(c.query["continuation-token"]);
        if (!t)
          return Err(c, 400, "InvalidArgument", "The continuation token provided is incorrect");
        token = *t;
        l.after = token;
      } else if (c.query.count("start-after")) {
        l.after = c.query["start-after"];
      }
    } else if (c.query.count(versions ? "key-marker" : "marker")) {
      l.after = c.query[versions ? "key-marker" : "marker"];
    }
    bool more = true;
    if (l.max > 0) {
      Status s = Walk(c, l, bucket, "", &more);
      if (!s.ok()) return ErrOf(c, s, false);
    }
    auto enc = [&](const std::string& s) { return url ? UriEncode(s, true) : XmlEscape(s); };
    if (versions) return VersionsXml(c, l, enc);
    std::string xml = std::string("<ListBucketResult xmlns=\"") + kNs + "\"><Name>" +
                      XmlEscape(c.bucket) + "</Name><Prefix>" + enc(l.prefix) + "</Prefix>";
    if (v2) {
      xml += "<KeyCount>" + std::to_string(l.count()) + "</KeyCount>";
      if (c.query.count("continuation-token")) {
        xml += "<ContinuationToken>" + XmlEscape(c.query["continuation-token"]) +
               "</ContinuationToken>";
      }
      if (c.query.count("start-after")) {
        xml += "<StartAfter>" + enc(c.query["start-after"]) + "</StartAfter>";
      }
      if (l.truncated) {
        xml += "<NextContinuationToken>" + Base64(l.last) + "</NextContinuationToken>";
      }
    } else {
      xml += "<Marker>" + enc(c.query.count("marker") ? c.query["marker"] : "") + "</Marker>";
      if (l.truncated && !l.delimiter.empty()) {
        xml += "<NextMarker>" + enc(l.last) + "</NextMarker>";
      }
    }
    xml += "<MaxKeys>" + std::to_string(l.max) + "</MaxKeys>";
    if (!l.delimiter.empty()) xml += "<Delimiter>" + enc(l.delimiter) + "</Delimiter>";
    if (url) xml += "<EncodingType>url</EncodingType>";
    xml += std::string("<IsTruncated>") + (l.truncated ? "true" : "false") + "</IsTruncated>";
    const bool owner = !v2 || (c.query.count("fetch-owner") && c.query["fetch-owner"] == "true");
    for (const ListedObject& o : l.objects) {
      auto etag = EtagOf(o.attr, c.ctx);
      xml += "<Contents><Key>" + enc(o.key) + "</Key><LastModified>" + IsoTime(o.attr.mtime_ns) +
             "</LastModified><ETag>" + XmlEscape(etag.ok() ? *etag : "\"\"") + "</ETag><Size>" +
             std::to_string(o.attr.size) + "</Size>";
      if (owner) {
        xml += "<Owner><ID>" + std::to_string(o.attr.uid) + "</ID><DisplayName>" +
               std::to_string(o.attr.uid) + "</DisplayName></Owner>";
      }
      xml += "<StorageClass>STANDARD</StorageClass></Contents>";
    }
    for (const std::string& p : l.prefixes) {
      xml += "<CommonPrefixes><Prefix>" + enc(p) + "</Prefix></CommonPrefixes>";
    }
    xml += "</ListBucketResult>";
    return Xml(xml);
  }

  /// The REST face's listing: one key a line ("prefix" query honoured;
  /// common prefixes with "delimiter", ending in it), up to 10,000.
  S3Response PlainList(Call& c, InodeId bucket) {
    Listing l;
    l.prefix = c.query.count("prefix") ? c.query["prefix"] : "";
    l.delimiter = c.query.count("delimiter") ? c.query["delimiter"] : "";
    l.max = 10000;
    bool more = true;
    if (Status s = Walk(c, l, bucket, "", &more); !s.ok()) return ErrOf(c, s, false);
    S3Response resp;
    for (const ListedObject& o : l.objects) resp.body += o.key + "\n";
    for (const std::string& p : l.prefixes) resp.body += p + "\n";
    resp.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    if (l.truncated) resp.headers.emplace_back("X-NeedleFS-Truncated", "true");
    return resp;
  }

  template <typename Enc>
  S3Response VersionsXml(Call& c, const Listing& l, const Enc& enc) {
    std::string xml = std::string("<ListVersionsResult xmlns=\"") + kNs + "\"><Name>" +
                      XmlEscape(c.bucket) + "</Name><Prefix>" + enc(l.prefix) +
                      "</Prefix><KeyMarker>" +
                      enc(c.query.count("key-marker") ? c.query["key-marker"] : "") +
                      "</KeyMarker><VersionIdMarker></VersionIdMarker><MaxKeys>" +
                      std::to_string(l.max) + "</MaxKeys>";
    if (!l.delimiter.empty()) xml += "<Delimiter>" + enc(l.delimiter) + "</Delimiter>";
    xml += std::string("<IsTruncated>") + (l.truncated ? "true" : "false") + "</IsTruncated>";
    if (l.truncated) {
      xml += "<NextKeyMarker>" + enc(l.last) + "</NextKeyMarker><NextVersionIdMarker>null" +
             "</NextVersionIdMarker>";
    }
    for (const ListedObject& o : l.objects) {
      auto etag = EtagOf(o.attr, c.ctx);
      xml += "<Version><Key>" + enc(o.key) +
             "</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>" +
             IsoTime(o.attr.mtime_ns) + "</LastModified><ETag>" +
             XmlEscape(etag.ok() ? *etag : "\"\"") + "</ETag><Size>" + std::to_string(o.attr.size) +
             "</Size><Owner><ID>" + std::to_string(o.attr.uid) + "</ID><DisplayName>" +
             std::to_string(o.attr.uid) +
             "</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Version>";
    }
    for (const std::string& p : l.prefixes) {
      xml += "<CommonPrefixes><Prefix>" + enc(p) + "</Prefix></CommonPrefixes>";
    }
    return Xml(xml + "</ListVersionsResult>");
  }

  // ---- tagging ----

  /// GET/PUT/DELETE ?tagging of an object: its tags as a URL-encoded
  /// "k=v&k2=v2" in the user.s3.tagging xattr (the x-amz-tagging form).
  S3Response ObjectTagging(Call& c, InodeId bucket) {
    auto a = FindObject(c, bucket, c.key);
    if (!a.ok()) return ErrOf(c, a.status(), false);
    const RequestContext root = RequestContext::Root();
    const std::string& m = c.r.method;
    if (m == "GET") {
      std::string xml = std::string("<Tagging xmlns=\"") + kNs + "\"><TagSet>";
      auto v = fs_->GetXattr(root, a->ino, kTaggingXattr);
      if (v.ok()) {
        for (const auto& [k, val] : ParseQuery(*v)) {
          xml += "<Tag><Key>" + XmlEscape(k) + "</Key><Value>" + XmlEscape(val) + "</Value></Tag>";
        }
      }
      return Xml(xml + "</TagSet></Tagging>");
    }
    if (m != "GET") {
      if (Status s = fs_->Access(c.ctx, a->ino, W_OK); !s.ok()) return ErrOf(c, s, false);
    }
    if (m == "DELETE") {
      Status s = fs_->RemoveXattr(root, a->ino, kTaggingXattr);
      if (!s.ok() && s.posix_errno() != ENODATA) return ErrOf(c, s, false);
      S3Response resp;
      resp.status = 204;
      return resp;
    }
    if (m != "PUT") return Err(c, 405, "MethodNotAllowed", m + " is not allowed on ?tagging");
    std::string body;
    if (Status s = Drain(c, &body, 64 << 10); !s.ok()) return ErrOf(c, s, false);
    std::string encoded;
    size_t at = 0, n = 0;
    while ((at = body.find("<Tag>", at)) != std::string::npos) {
      const size_t end = body.find("</Tag>", at);
      if (end == std::string::npos) return Err(c, 400, "MalformedXML", "an unclosed Tag");
      const std::string tag = body.substr(at, end - at);
      at = end;
      auto field = [&](const std::string& name) -> std::optional<std::string> {
        const size_t b = tag.find("<" + name + ">"), e = tag.find("</" + name + ">");
        if (b == std::string::npos || e == std::string::npos) return std::nullopt;
        return XmlUnescape(tag.substr(b + name.size() + 2, e - b - name.size() - 2));
      };
      auto k = field("Key"), v = field("Value");
      if (!k || !v || k->empty() || k->size() > 128 || v->size() > 256) {
        return Err(c, 400, "InvalidTag", "a tag needs a Key (1-128) and a Value (0-256)");
      }
      if (++n > 10) return Err(c, 400, "BadRequest", "Object tags cannot be greater than 10");
      encoded += (encoded.empty() ? "" : "&") + UriEncode(*k, false) + "=" + UriEncode(*v, false);
    }
    if (Status s = fs_->SetXattr(root, a->ino, kTaggingXattr, encoded, 0); !s.ok()) {
      return ErrOf(c, s, false);
    }
    return S3Response{};
  }

  FileSystem* fs_;
  mutable std::mutex ids_mu_;
  std::shared_ptr<const S3Identities> ids_;  // GUARDED_BY(ids_mu_)
  S3GatewayOptions o_;
  std::atomic<uint64_t> requests_{0}, errors_{0};
  mutable std::mutex ops_mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> op_counts_;  // GUARDED_BY(ops_mu_)
  std::map<std::string, double> op_seconds_;                           // GUARDED_BY(ops_mu_)
  /// The object cache: entries by inode, the memory they hold, hits.
  static constexpr size_t kMaxCachedObjects = 16'384;
  static constexpr uint64_t kMaxCachedBody = 64 << 10;
  static constexpr uint64_t kMaxCachedHeaders = 8 << 10;
  std::mutex cache_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<const ObjectInfo>>
      objects_;                // GUARDED_BY(cache_mu_)
  uint64_t cached_bytes_ = 0;  // GUARDED_BY(cache_mu_)
  std::atomic<uint64_t> cache_hits_{0};
  std::mutex mode_mu_;
  /// Per bucket inode: its files' mode and until when it holds.
  std::unordered_map<uint64_t, std::pair<uint32_t, std::chrono::steady_clock::time_point>>
      bucket_modes_;  // GUARDED_BY(mode_mu_)
};

S3Gateway::S3Gateway(FileSystem* fs, S3Identities identities, S3GatewayOptions options)
    : impl_(std::make_unique<Impl>(fs, std::move(identities), std::move(options))) {}
S3Gateway::~S3Gateway() = default;
S3Response S3Gateway::Handle(S3Request& request) { return impl_->Handle(request); }
uint64_t S3Gateway::requests() const { return impl_->requests(); }
std::string S3Gateway::MetricsText() const { return impl_->MetricsText(); }
void S3Gateway::SetIdentities(S3Identities identities) {
  impl_->SetIdentities(std::move(identities));
}
uint64_t S3Gateway::errors() const { return impl_->errors(); }

}  // namespace needlefs::gateway
