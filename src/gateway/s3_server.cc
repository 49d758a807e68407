#include "gateway/s3_server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

#include "client/file_system.h"
#include "common/logging.h"

namespace needlefs::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kPieceBytes = 1 << 20;
/// A connection that moves no byte for this long is closed (a client that
/// opens connections and sends nothing must not hold every slot).
constexpr int64_t kIdleTimeoutNs = 120'000'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Whether a response header may go out as it is: a token name, a value
/// without control characters (no CR/LF: no header injection) and short
/// (Beast cannot carry a value over 64 KiB).
bool SafeHeader(std::string_view name, std::string_view value) {
  if (name.empty() || value.size() > 8192) return false;
  for (unsigned char ch : name) {
    if (ch <= 32 || ch >= 127 || std::strchr("()<>@,;:\\\"/[]?={}", ch)) return false;
  }
  for (unsigned char ch : value) {
    if ((ch < 32 && ch != '\t') || ch == 127) return false;
  }
  return true;
}

}  // namespace

class S3Server::Impl {
 public:
  ~Impl() {
    stopping_ = true;
    boost::system::error_code ec;
    // A blocking accept(2) returns on shutdown(2) of its socket, not on close.
    if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    if (reaper_.joinable()) reaper_.join();
    acceptor_.close(ec);
    {
      std::lock_guard<std::mutex> g(mu_);
      for (auto& s : sockets_) s.socket->shutdown(tcp::socket::shutdown_both, ec);
    }
    std::list<ConnectionThread> threads;
    {
      std::lock_guard<std::mutex> g(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.thread.join();
    gateway_.reset();
    fs_.reset();
  }

  Status Start(const S3ServerOptions& o) {
    o_ = o;
    auto ids = S3Identities::Load(o.identities_file);
    if (!ids.ok() && ids.status().code() == StatusCode::kNotFound) {
      ids = S3Identities::Create(o.identities_file, o.credentials_file);
      created_ = ids.ok();
    }
    if (!ids.ok()) return ids.status();
    if (ids->list.empty()) return Status::InvalidArgument(o.identities_file + ": no identities");
    access_key_ = ids->list[0].access_key;
    FileSystemOptions fo;
    fo.meta = o.meta;
    fo.master = o.master;
    fo.client_name = "s3:" + o.address + ":" + std::to_string(o.port);
    fo.file = o.file;
    auto fs = FileSystem::Open(fo);
    if (!fs.ok()) return fs.status();
    fs_ = std::move(fs).value();
    gateway_ = std::make_unique<S3Gateway>(fs_.get(), std::move(*ids), o.gateway);
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(o.address, ec);
    if (ec) return Status::InvalidArgument("bad address " + o.address);
    tcp::endpoint ep(addr, o.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable("cannot listen on " + o.address + ":" + std::to_string(o.port) +
                                 ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    reaper_ = std::thread([this] { ReapIdle(); });
    return Status::OK();
  }

  uint16_t port() const { return port_; }
  bool created() const { return created_; }
  const std::string& access_key() const { return access_key_; }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      auto socket = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      if (ec) {
        if (stopping_) return;
        // EMFILE and the like: give the other connections time to end.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      if (static_cast<int>(sockets_.size()) >= o_.max_connections) {
        socket->close(ec);
        continue;
      }
      // Join the threads of connections that ended.
      for (auto t = threads_.begin(); t != threads_.end();) {
        if (t->done->load()) {
          t->thread.join();
          t = threads_.erase(t);
        } else {
          ++t;
        }
      }
      auto last = std::make_shared<std::atomic<int64_t>>(NowNs());
      sockets_.push_back({socket, last});
      auto it = std::prev(sockets_.end());
      auto done = std::make_shared<std::atomic<bool>>(false);
      try {
        threads_.push_back({std::thread([this, socket, it, done, last] {
                              try {
                                Serve(*socket, *last);
                              } catch (const std::exception& e) {
                                // Never the whole gateway for one request.
                                spdlog::error("s3.connection_failed: {}", e.what());
                              }
                              std::lock_guard<std::mutex> g2(mu_);
                              sockets_.erase(it);
                              done->store(true);
                            }),
                            done});
      } catch (const std::system_error& e) {
        spdlog::warn("s3.no_thread_for_connection: {}", e.what());
        sockets_.erase(it);
        socket->close(ec);
      }
    }
  }

  /// Closes connections that moved no byte for kIdleTimeoutNs.
  void ReapIdle() {
    while (!stopping_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      const int64_t now = NowNs();
      std::lock_guard<std::mutex> g(mu_);
      for (auto& c : sockets_) {
        if (now - c.last->load() > kIdleTimeoutNs) {
          boost::system::error_code ec;
          c.socket->shutdown(tcp::socket::shutdown_both, ec);
        }
      }
    }
  }

  /// Requests on one connection until it closes or one asks to.
  void Serve(tcp::socket& socket, std::atomic<int64_t>& last) {
    auto touch = [&last] { last.store(NowNs(), std::memory_order_relaxed); };
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    const auto remote = socket.remote_endpoint(ec);
    const std::string peer =
        ec ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::buffer_body> parser;
      parser.body_limit(
          std::numeric_limits<std::uint64_t>::max());  // objects have no size cap here
      http::read_header(socket, buffer, parser, ec);
      touch();
      if (ec == http::error::need_buffer) ec = {};  // a body follows: read as the gateway asks
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::eof) {
          spdlog::debug("s3.read_header peer={}: {}", peer, ec.message());
        }
        return;  // closed, or not HTTP: nothing to answer
      }
      auto& req = parser.get();
      S3Request r;
      r.method = std::string(req.method_string());
      const std::string target(req.target());
      const size_t q = target.find('?');
      r.raw_path = target.substr(0, q);
      r.raw_query = q == std::string::npos ? "" : target.substr(q + 1);
      for (const auto& f : req) {
        std::string name(f.name_string());
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        auto [it, fresh] = r.headers.emplace(name, std::string(f.value()));
        if (!fresh) it->second += "," + std::string(f.value());
      }
      r.remote = peer;
      if (req.has_content_length() || parser.content_length()) {
        r.content_length = parser.content_length().value_or(0);
      }
      bool continue_sent = false;
      bool body_error = false;
      const bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
      std::vector<char> chunk(kPieceBytes);
      r.body = [&](std::string* piece) -> Status {
        piece->clear();
        if (parser.is_done()) return Status::OK();
        if (expect_continue && !continue_sent) {
          static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          asio::write(socket, asio::buffer(kContinue), ec);
          continue_sent = true;
          if (ec) {
            body_error = true;
            return Status::Unavailable("the client went away");
          }
        }
        while (!parser.is_done() && piece->empty()) {
          req.body().data = chunk.data();
          req.body().size = chunk.size();
          http::read(socket, buffer, parser, ec);
          touch();
          if (ec == http::error::need_buffer) ec = {};
          if (ec) {
            body_error = true;
            return Status::InvalidArgument("IncompleteBody: the request body ended early (" +
                                           ec.message() + ")");
          }
          piece->assign(chunk.data(), chunk.size() - req.body().size);
        }
        return Status::OK();
      };
      if (r.method == "GET" && (r.raw_path == "/metrics" || r.raw_path == "/status") &&
          r.headers.count("authorization") == 0 &&
          r.raw_query.find("X-Amz-") == std::string::npos) {
        if (!WriteSimple(socket, Observability(r.raw_path))) return;
        if (!req.keep_alive() || !parser.is_done()) return;
        continue;
      }
      MaybeReloadIdentities();
      S3Response resp = gateway_->Handle(r);
      // Keep the connection only when the whole request was read: bytes of
      // an unread body would be taken for the next request.
      const bool keep = req.keep_alive() && !resp.close && !body_error && parser.is_done();
      if (!WriteResponse(socket, r, resp, keep, touch)) return;
      touch();
      if (!keep) {
        if (!parser.is_done() && !body_error) LingerClose(socket);
        return;
      }
    }
  }

  /// Loads the identities file again when its mtime changed (checked at
  /// most once a second), so `needlefs admin s3.user.*` takes effect
  /// without a restart. A file that does not parse keeps the old set.
  void MaybeReloadIdentities() {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> g(reload_mu_);
    if (now - last_check_ < std::chrono::seconds(1)) return;
    last_check_ = now;
    struct stat st;
    if (::stat(o_.identities_file.c_str(), &st) != 0) return;
    const int64_t mtime =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (mtime == identities_mtime_) return;
    auto ids = S3Identities::Load(o_.identities_file);
    if (!ids.ok()) {
      spdlog::warn("s3.identities_not_reloaded: {}", ids.status().ToString());
      return;
    }
    identities_mtime_ = mtime;
    gateway_->SetIdentities(std::move(*ids));
    spdlog::info("s3.identities_reloaded file={}", o_.identities_file);
  }

  /// /metrics (Prometheus) and /status (JSON).
  S3Response Observability(const std::string& path) {
    S3Response resp;
    if (path == "/metrics") {
      resp.body = gateway_->MetricsText() + "# TYPE needlefs_s3_errors_total counter\n" +
                  "needlefs_s3_errors_total " + std::to_string(gateway_->errors()) + "\n";
      resp.headers.emplace_back("Content-Type", "text/plain; version=0.0.4");
    } else {
      resp.body = "{\"port\": " + std::to_string(port_) +
                  ", \"requests\": " + std::to_string(gateway_->requests()) +
                  ", \"errors\": " + std::to_string(gateway_->errors()) + "}\n";
      resp.headers.emplace_back("Content-Type", "application/json");
    }
    return resp;
  }

  bool WriteSimple(tcp::socket& socket, const S3Response& resp) {
    http::response<http::string_body> res{static_cast<http::status>(resp.status), 11};
    for (const auto& [k, v] : resp.headers) res.set(k, v);
    res.body() = resp.body;
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(socket, res, ec);
    return !ec;
  }

  /// After an answer to a request whose body was not read (an error
  /// before the upload): stop sending, read and drop what the client still
  /// sends (at most 8 MiB), then close, so the client reads the answer
  /// instead of a reset.
  void LingerClose(tcp::socket& socket) {
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    std::vector<char> sink(64 << 10);
    size_t dropped = 0;
    while (!ec && dropped < (8u << 20)) dropped += socket.read_some(asio::buffer(sink), ec);
  }

  bool WriteResponse(tcp::socket& socket, const S3Request& r, S3Response& resp, bool keep,
                     const std::function<void()>& touch) {
    boost::system::error_code ec;
    http::response<http::empty_body> res{static_cast<http::status>(resp.status), 11};
    bool has_length = false;
    for (const auto& [k, v] : resp.headers) {
      if (!SafeHeader(k, v)) {
        spdlog::debug("s3.header_dropped name={}", SafeHeader(k, "") ? k : "?");
        continue;
      }
      if (beast::iequals(k, "Content-Length")) has_length = true;
      res.set(k, v);
    }
    res.keep_alive(keep);
    const bool head = r.method == "HEAD";
    if (resp.stream) {
      res.content_length(resp.stream_length);
    } else if (!has_length && !(head && resp.status < 300)) {
      res.content_length(resp.body.size());
    } else if (!has_length) {
      res.content_length(resp.stream_length);
    }
    http::response_serializer<http::empty_body> sr{res};
    http::write_header(socket, sr, ec);
    if (ec) return false;
    if (head) return true;
    if (resp.stream) {
      Status s = resp.stream([&](std::string_view piece) -> Status {
        asio::write(socket, asio::buffer(piece.data(), piece.size()), ec);
        touch();
        return ec ? Status::Unavailable("the client went away") : Status::OK();
      });
      if (!s.ok()) {
        // Headers are gone: the only honest signal left is a cut connection.
        spdlog::warn("s3.get_stream_failed: {}", s.ToString());
        return false;
      }
      return true;
    }
    asio::write(socket, asio::buffer(resp.body), ec);
    return !ec;
  }

  S3ServerOptions o_;
  std::mutex reload_mu_;
  std::chrono::steady_clock::time_point last_check_;  // GUARDED_BY(reload_mu_)
  int64_t identities_mtime_ = -1;                     // GUARDED_BY(reload_mu_)
  std::unique_ptr<FileSystem> fs_;
  std::unique_ptr<S3Gateway> gateway_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  bool created_ = false;
  std::string access_key_;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::thread reaper_;
  std::mutex mu_;
  struct Conn {
    std::shared_ptr<tcp::socket> socket;
    std::shared_ptr<std::atomic<int64_t>> last;  // when a byte last moved, ns
  };
  std::list<Conn> sockets_;  // GUARDED_BY(mu_)
  struct ConnectionThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<ConnectionThread> threads_;  // GUARDED_BY(mu_)
};

S3Server::S3Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Server::~S3Server() = default;

StatusOr<std::unique_ptr<S3Server>> S3Server::Start(const S3ServerOptions& options) {
  auto impl = std::make_unique<Impl>();
  NEEDLEFS_RETURN_IF_ERROR(impl->Start(options));
  return std::unique_ptr<S3Server>(new S3Server(std::move(impl)));
}

uint16_t S3Server::port() const { return impl_->port(); }
bool S3Server::created_identities() const { return impl_->created(); }
std::string S3Server::access_key() const { return impl_->access_key(); }

}  // namespace needlefs::gateway
