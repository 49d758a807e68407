#include "common/http.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace needlefs {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }
beast::string_view Bsv(std::string_view s) { return {s.data(), s.size()}; }

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Errno(const error_code& ec) {
  return ec.category() == boost::system::system_category() ? ec.value() : 0;
}

std::string HostPort(std::string_view host, uint16_t port) {
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return h + ":" + std::to_string(port);
}

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Form-style decoding for query components: '+' is a space, then %XX escapes.
std::string QueryDecode(std::string_view s) {
  std::string plus(s);
  std::replace(plus.begin(), plus.end(), '+', ' ');
  return PercentDecode(plus);
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key = QueryDecode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : QueryDecode(pair.substr(eq + 1));
    if (!key.empty()) out.emplace(std::move(key), std::move(value));
  }
  return out;
}

// Copies Beast fields into our map; repeated fields are joined with ", " (RFC 9110 5.3).
template <class Fields>
void CopyFields(const Fields& fields, HttpHeaders* out) {
  for (const auto& f : fields) {
    auto [it, inserted] = out->emplace(Str(f.name_string()), Str(f.value()));
    if (!inserted) it->second += ", " + Str(f.value());
  }
}

void SetTimeout(int fd, int optname, int ms) {
  if (ms <= 0) return;
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv));
}

void SetupSocket(int fd, int timeout_ms) {
  SetTimeout(fd, SO_RCVTIMEO, timeout_ms);
  SetTimeout(fd, SO_SNDTIMEO, timeout_ms);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// A blocking SyncReadStream/SyncWriteStream over a socket fd. Asio's own synchronous socket ops
// go back to poll(-1) on EAGAIN, so SO_RCVTIMEO/SO_SNDTIMEO never fire through them; here the
// system calls are made directly and EAGAIN becomes beast::error::timeout. Sends use
// MSG_NOSIGNAL so a peer reset never raises SIGPIPE.
class FdStream {
 public:
  explicit FdStream(int fd) : fd_(fd) {}

  template <class Buffers>
  size_t read_some(const Buffers& b, error_code& ec) {
    return Io(b, false, ec);
  }
  template <class Buffers>
  size_t read_some(const Buffers& b) {
    return IoOrThrow(b, false);
  }
  template <class Buffers>
  size_t write_some(const Buffers& b, error_code& ec) {
    return Io(b, true, ec);
  }
  template <class Buffers>
  size_t write_some(const Buffers& b) {
    return IoOrThrow(b, true);
  }

 private:
  template <class Buffers>
  size_t IoOrThrow(const Buffers& b, bool write) {
    error_code ec;
    size_t n = Io(b, write, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class Buffers>
  size_t Io(const Buffers& buffers, bool write, error_code& ec) {
    constexpr int kMaxIov = 16;
    iovec iov[kMaxIov];
    int count = 0;
    for (auto it = net::buffer_sequence_begin(buffers);
         it != net::buffer_sequence_end(buffers) && count < kMaxIov; ++it) {
      net::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(b.data());
      iov[count].iov_len = b.size();
      ++count;
    }
    ec = {};
    if (count == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    for (;;) {
      ssize_t n = write ? ::sendmsg(fd_, &msg, MSG_NOSIGNAL) : ::recvmsg(fd_, &msg, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) {
        ec = write ? error_code(EIO, boost::system::system_category()) : net::error::eof;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ec = beast::error::timeout;
      } else {
        ec = error_code(errno, boost::system::system_category());
      }
      return 0;
    }
  }

  int fd_;
};

// After an early error reply the peer may still be sending a body. Closing with unread data
// makes the kernel send RST, which can destroy the reply before the client reads it, so
// half-close and drain for a bounded time first.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  SetTimeout(fd, SO_RCVTIMEO, 200);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  char buf[16384];
  size_t drained = 0;
  while (drained < (64u << 20) && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      drained += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
}

bool IsParseError(const error_code& ec) {
  if (ec.category() != make_error_code(http::error::bad_method).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::short_read;
}

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(io_) {}
  ~BeastHttpServer() override { Stop(); }

  Status Listen();
  void StartAccepting() {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  uint16_t port() const override { return port_; }
  void Stop() override;

 private:
  struct Conn {
    std::thread thread;
    int fd = -1;  // -1 once the connection thread closed its socket
  };

  void AcceptLoop();
  void Spawn(tcp::socket sock);
  void ReapFinished();
  void Finish(uint64_t id, tcp::socket& sock);
  void Serve(tcp::socket& sock);
  bool WriteResponse(FdStream& stream, HttpResponse res, bool head, bool keep_alive);

  const HttpServerOptions options_;
  const HttpHandler handler_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;

  std::mutex mu_;  // guards everything below
  std::map<uint64_t, Conn> conns_;
  std::vector<uint64_t> finished_;  // ids whose thread has ended and awaits join
  uint64_t next_id_ = 0;
  int active_ = 0;
};

Status BeastHttpServer::Listen() {
  const std::string where = HostPort(options_.listen_address, options_.port);
  std::string host = options_.listen_address;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  error_code ec;
  net::ip::address addr = net::ip::make_address(host, ec);
  if (ec) {  // Not a literal: resolve a name such as "localhost", preferring IPv4.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(options_.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("bad listen address " + where + ": " + ec.message());
    }
    addr = results.begin()->endpoint().address();
    for (const auto& r : results) {
      if (r.endpoint().address().is_v4()) {
        addr = r.endpoint().address();
        break;
      }
    }
  }
  const tcp::endpoint ep(addr, options_.port);
  auto fail = [&](std::string_view what) {
    return Status(StatusCode::kUnavailable, std::string(what) + " " + where + ": " + ec.message(),
                  Errno(ec));
  };
  acceptor_.open(ep.protocol(), ec);
  if (ec) return fail("cannot open socket for");
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("cannot set SO_REUSEADDR on");
  acceptor_.bind(ep, ec);
  if (ec) return fail("cannot bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on");
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return fail("cannot get local port of");
  return Status::OK();
}

void BeastHttpServer::AcceptLoop() {
  while (!stopping_.load()) {
    tcp::socket sock(io_);
    error_code ec;
    acceptor_.accept(sock, ec);  // Stop() shuts the listener down, which fails this call
    if (stopping_.load()) break;
    ReapFinished();
    if (ec) {  // EMFILE and the like: back off instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    Spawn(std::move(sock));
  }
}

void BeastHttpServer::Spawn(tcp::socket sock) {
  // The thread is created under mu_, so its Finish() (which takes mu_) always finds the entry
  // complete.
  std::lock_guard<std::mutex> lock(mu_);
  if (active_ >= options_.max_connections) return;  // `sock` closes on return
  const uint64_t id = next_id_++;
  Conn& conn = conns_[id];
  conn.fd = sock.native_handle();
  try {
    conn.thread = std::thread([this, id, s = std::move(sock)]() mutable {
      Serve(s);
      Finish(id, s);
    });
    ++active_;
  } catch (const std::system_error&) {
    conns_.erase(id);  // the socket, owned by the discarded lambda, is already closed
  }
}

void BeastHttpServer::Finish(uint64_t id, tcp::socket& sock) {
  std::lock_guard<std::mutex> lock(mu_);
  // Closing under mu_ guarantees Stop() never shuts down an fd number that was reused.
  error_code ec;
  sock.close(ec);
  --active_;
  auto it = conns_.find(id);
  if (it != conns_.end()) {  // absent when Stop() already took the thread
    it->second.fd = -1;
    finished_.push_back(id);
  }
}

void BeastHttpServer::ReapFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t id : finished_) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      done.push_back(std::move(it->second.thread));
      conns_.erase(it);
    }
    finished_.clear();
  }
  for (auto& t : done) {
    if (t.joinable()) t.join();  // the thread is past Finish(), so this returns promptly
  }
}

void BeastHttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  // On Linux, shutdown() of a listening socket wakes a blocked accept() (EINVAL); close()
  // alone would not.
  if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  error_code ec;
  acceptor_.close(ec);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, conn] : conns_) {
      // Wakes blocked reads (EOF) and writes (EPIPE); the owning thread closes the fd.
      if (conn.fd >= 0) ::shutdown(conn.fd, SHUT_RDWR);
      threads.push_back(std::move(conn.thread));
    }
    conns_.clear();
    finished_.clear();
  }
  for (auto& t : threads) {
    if (!t.joinable()) continue;
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // Stop() called from a handler: cannot join ourselves
    } else {
      t.join();
    }
  }
}

void BeastHttpServer::Serve(tcp::socket& sock) {
  const int fd = sock.native_handle();
  SetupSocket(fd, options_.idle_timeout_ms);
  error_code ec;
  const tcp::endpoint peer = sock.remote_endpoint(ec);
  const std::string remote = HostPort(peer.address().to_string(), peer.port());
  FdStream stream(fd);
  beast::flat_buffer buffer;
  try {
    while (!stopping_.load()) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(options_.max_body_bytes);  // checked against Content-Length up front
      http::read_header(stream, buffer, parser, ec);
      if (!ec && !parser.is_done()) {
        // Clients such as curl wait (up to 1 s) for this before sending a large body.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          net::write(stream, net::buffer(kContinue.data(), kContinue.size()), ec);
        }
        if (!ec) http::read(stream, buffer, parser, ec);
      }
      if (ec == http::error::body_limit || IsParseError(ec)) {
        const bool too_large = ec == http::error::body_limit;
        WriteResponse(stream,
                      HttpResponse::Error(too_large ? 413 : 400,
                                          too_large ? "request body too large"
                                                    : "malformed request: " + ec.message()),
                      false, false);
        LingeringClose(fd);
        return;
      }
      if (ec) return;  // timeout, EOF, reset: close quietly

      http::request<http::string_body> msg = parser.release();
      HttpRequest req;
      req.method = Str(msg.method_string());
      req.target = Str(msg.target());
      const size_t q = req.target.find('?');
      req.path = PercentDecode(std::string_view(req.target).substr(0, q));
      if (q != std::string::npos) {
        req.query = ParseQuery(std::string_view(req.target).substr(q + 1));
      }
      CopyFields(msg, &req.headers);
      req.body = std::move(msg.body());
      req.remote_address = remote;
      const bool keep_alive = msg.keep_alive() && !stopping_.load();
      const bool head = msg.method() == http::verb::head;

      HttpResponse res;
      try {
        res = handler_(req);
      } catch (const std::exception& e) {
        res = HttpResponse::Error(500, std::string("internal error: ") + e.what());
      } catch (...) {
        res = HttpResponse::Error(500, "internal error");
      }
      if (!WriteResponse(stream, std::move(res), head, keep_alive) || !keep_alive) return;
    }
  } catch (const std::exception&) {
    // Allocation or serialization failure: drop the connection.
  }
}

bool BeastHttpServer::WriteResponse(FdStream& stream, HttpResponse res, bool head,
                                    bool keep_alive) {
  if (res.status < 200 || res.status > 999) {
    res = HttpResponse::Error(500, "handler returned invalid status " + std::to_string(res.status));
  }
  const auto status = static_cast<http::status>(res.status);
  const bool no_body = res.status == 204 || res.status == 304;
  auto fill = [&](auto& out) {
    out.set(http::field::server, options_.server_name);
    for (const auto& [name, value] : res.headers) {
      // Refuse header injection via CR/LF in handler-supplied fields.
      if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        continue;
      }
      out.set(name, value);
    }
    out.keep_alive(keep_alive);
  };
  error_code ec;
  if (head || no_body) {
    // Header only. Content-Length is set by hand (no prepare_payload, which would say 0).
    http::response<http::empty_body> out{status, 11};
    fill(out);
    out.erase(http::field::transfer_encoding);
    if (res.status == 204) {
      out.erase(http::field::content_length);
    } else if (head && (res.content_length || !res.body.empty() ||
                        out.find(http::field::content_length) == out.end())) {
      out.set(http::field::content_length,
              std::to_string(res.content_length.value_or(res.body.size())));
    }
    http::write(stream, out, ec);
  } else {
    http::response<http::string_body> out{status, 11, std::move(res.body)};
    fill(out);
    out.prepare_payload();
    http::write(stream, out, ec);
  }
  return !ec;
}

// Connects with a timeout: blocking connect() would ignore it, so connect non-blocking and poll.
error_code ConnectWithTimeout(tcp::socket& sock, const tcp::endpoint& ep, int timeout_ms) {
  error_code ec;
  sock.non_blocking(true, ec);
  if (ec) return ec;
  const int fd = sock.native_handle();
  if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) < 0) {
    if (errno != EINPROGRESS) return error_code(errno, boost::system::system_category());
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return beast::error::timeout;
    if (n < 0) return error_code(errno, boost::system::system_category());
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return error_code(err, boost::system::system_category());
  }
  sock.non_blocking(false, ec);
  return ec;
}

// True for errors meaning the server closed a kept-alive connection before our request.
bool IsStaleConnection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(ToLower(a[i]));
    const auto y = static_cast<unsigned char>(ToLower(b[i]));
    if (x != y) return x < y;
  }
  return a.size() < b.size();
}

std::string_view HttpRequest::Header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

std::string HttpRequest::QueryParam(const std::string& name, const std::string& def) const {
  auto it = query.find(name);
  return it == query.end() ? def : it->second;
}

std::string_view HttpClientResponse::Header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

HttpResponse HttpResponse::Json(int status, std::string json_body) {
  HttpResponse r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = std::move(json_body);
  return r;
}

HttpResponse HttpResponse::Error(int status, std::string_view message) {
  return Json(status, "{\"error\":" + JsonQuote(message) + "}");
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        HttpHandler handler) {
  try {
    auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
    NEEDLEFS_RETURN_IF_ERROR(server->Listen());
    server->StartAccepting();
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot start HTTP server: ") + e.what());
  }
}

struct HttpClient::Impl {
  net::io_context io;
  tcp::socket sock{io};
  beast::flat_buffer buffer;
  std::string host;
  uint16_t port = 0;
  int timeout_ms = 0;

  std::string Where() const { return HostPort(host, port); }

  void Close() {
    error_code ec;
    sock.close(ec);
    buffer.clear();
  }

  Status Fail(std::string_view what, const error_code& ec) const {
    const std::string msg = std::string(what) + " " + Where() + ": " + ec.message();
    if (ec == beast::error::timeout || ec == net::error::timed_out) {
      return Status(StatusCode::kDeadlineExceeded, msg, ETIMEDOUT);
    }
    return Status(StatusCode::kUnavailable, msg, Errno(ec));
  }

  Status Connect() {
    Close();
    error_code ec;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec) return Fail("cannot resolve", ec);
    if (results.empty()) ec = net::error::host_not_found;
    for (const auto& entry : results) {  // try each address in turn
      Close();
      sock.open(entry.endpoint().protocol(), ec);
      if (!ec) ec = ConnectWithTimeout(sock, entry.endpoint(), timeout_ms);
      if (!ec) {
        SetupSocket(sock.native_handle(), timeout_ms);
        return Status::OK();
      }
    }
    Close();
    return Fail("cannot connect to", ec);
  }

  // One request/response exchange on the open socket. On failure the socket is closed and
  // `*stale` tells whether the error looks like a server-closed idle connection.
  StatusOr<HttpClientResponse> RoundTrip(std::string_view method, std::string_view target,
                                         std::string_view body, const HttpHeaders& headers,
                                         bool* stale) {
    *stale = false;
    // buffer_body sends the caller's bytes without copying them into the message.
    http::request<http::buffer_body> req;
    req.version(11);
    const http::verb verb = http::string_to_verb(Bsv(method));
    if (verb == http::verb::unknown) {
      req.method_string(Bsv(method));
    } else {
      req.method(verb);
    }
    req.target(Bsv(target));
    req.set(http::field::host, Where());
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || verb == http::verb::post || verb == http::verb::put ||
        verb == http::verb::patch) {
      req.content_length(body.size());
    }
    req.body().data = body.empty() ? nullptr : const_cast<char*>(body.data());
    req.body().size = body.size();
    req.body().more = false;

    FdStream stream(sock.native_handle());
    error_code ec;
    http::write(stream, req, ec);
    if (ec) {
      *stale = IsStaleConnection(ec);
      Close();
      return Fail("cannot send request to", ec);
    }
    std::optional<http::response_parser<http::string_body>> parser;
    do {  // skip interim 1xx responses (e.g. 100 Continue when the caller sent Expect)
      parser.emplace();
      parser->header_limit(1u << 20);
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none is buggy
      if (verb == http::verb::head) parser->skip(true);
      http::read(stream, buffer, *parser, ec);
      if (ec) {
        *stale = IsStaleConnection(ec);
        Close();
        return Fail("cannot read response from", ec);
      }
    } while (parser->get().result_int() / 100 == 1 && parser->get().result_int() != 101);

    auto& msg = parser->get();
    HttpClientResponse out;
    out.status = static_cast<int>(msg.result_int());
    CopyFields(msg, &out.headers);
    out.body = std::move(msg.body());
    if (!msg.keep_alive() || parser->need_eof()) Close();
    return out;
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, int timeout_ms)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout_ms = timeout_ms;
}

HttpClient::~HttpClient() = default;

StatusOr<HttpClientResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                                 std::string_view body,
                                                 const HttpHeaders& headers) {
  try {
    for (int attempt = 0;; ++attempt) {
      const bool reused = impl_->sock.is_open();
      if (!reused) NEEDLEFS_RETURN_IF_ERROR(impl_->Connect());
      bool stale = false;
      StatusOr<HttpClientResponse> result = impl_->RoundTrip(method, target, body, headers, &stale);
      // A kept-alive connection the server closed while idle is retried once on a fresh one.
      if (result.ok() || !stale || !reused || attempt > 0) return result;
    }
  } catch (const std::exception& e) {
    impl_->Close();
    return Status::Internal("HTTP request to " + impl_->Where() + " failed: " + e.what());
  }
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Status SplitHostPort(std::string_view hostport, std::string* host, uint16_t* port) {
  const Status bad = Status::InvalidArgument("bad host:port \"" + std::string(hostport) + "\"");
  std::string_view h;
  std::string_view p;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos || close + 1 >= hostport.size() ||
        hostport[close + 1] != ':') {
      return bad;
    }
    h = hostport.substr(1, close - 1);
    p = hostport.substr(close + 2);
  } else {
    const size_t colon = hostport.rfind(':');
    if (colon == std::string_view::npos) return bad;
    h = hostport.substr(0, colon);
    p = hostport.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return bad;  // IPv6 needs brackets
  }
  unsigned value = 0;
  auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (h.empty() || p.empty() || err != std::errc() || end != p.data() + p.size() || value < 1 ||
      value > 65535) {
    return bad;
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::OK();
}

}  // namespace needlefs
