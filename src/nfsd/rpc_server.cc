#include "nfsd/rpc_server.h"

#include <array>
#include <boost/asio.hpp>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "common/logging.h"

namespace needlefs::nfsd {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

constexpr uint32_t kLastFragment = 0x80000000u;

/// "127.0.0.1" for an IPv4-mapped IPv6 address too.
std::string AddressText(const asio::ip::address& a) {
  return a.is_v6() && a.to_v6().is_v4_mapped() ? a.to_v6().to_v4().to_string() : a.to_string();
}

/// One TCP connection: reads record-marked fragments into whole records,
/// runs each on the worker pool, writes replies one at a time.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, asio::thread_pool* workers, const RpcHandler* handler,
             size_t max_record)
      : socket_(std::move(socket)),
        strand_(asio::make_strand(socket_.get_executor())),
        workers_(workers),
        handler_(handler),
        max_record_(max_record) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      peer_.address = AddressText(ep.address());
      peer_.port = ep.port();
    }
    socket_.set_option(tcp::no_delay(true), ec);
  }

  void Start() { ReadMark(); }

  void Close() {
    asio::post(strand_, [self = shared_from_this()] {
      boost::system::error_code ec;
      self->socket_.close(ec);
    });
  }

 private:
  void ReadMark() {
    asio::async_read(socket_, asio::buffer(mark_, 4),
                     asio::bind_executor(strand_, [self = shared_from_this()](
                                                      boost::system::error_code ec, size_t) {
                       if (ec) return;
                       self->OnMark();
                     }));
  }

  void OnMark() {
    const uint32_t m = (uint32_t{mark_[0]} << 24) | (uint32_t{mark_[1]} << 16) |
                       (uint32_t{mark_[2]} << 8) | mark_[3];
    const size_t len = m & ~kLastFragment;
    last_ = (m & kLastFragment) != 0;
    if (record_.size() + len > max_record_) {
      spdlog::warn("nfsd.record_too_large peer={}:{} bytes={}", peer_.address, peer_.port,
                   record_.size() + len);
      boost::system::error_code ec;
      socket_.close(ec);
      return;
    }
    const size_t at = record_.size();
    record_.resize(at + len);
    asio::async_read(socket_, asio::buffer(record_.data() + at, len),
                     asio::bind_executor(strand_, [self = shared_from_this()](
                                                      boost::system::error_code ec, size_t) {
                       if (ec) return;
                       self->OnFragment();
                     }));
  }

  void OnFragment() {
    if (last_) {
      auto record = std::make_shared<std::string>(std::move(record_));
      record_.clear();
      asio::post(*workers_, [self = shared_from_this(), record] {
        std::optional<std::string> reply = (*self->handler_)(*record, self->peer_);
        if (reply) {
          if (!reply->empty()) self->Send(std::move(*reply));
        } else {
          self->Close();  // not RPC: nothing sensible can follow on this stream
        }
      });
    }
    ReadMark();
  }

  void Send(std::string reply) {
    const uint32_t m = kLastFragment | static_cast<uint32_t>(reply.size());
    std::string framed;
    framed.reserve(reply.size() + 4);
    framed.push_back(static_cast<char>(m >> 24));
    framed.push_back(static_cast<char>(m >> 16));
    framed.push_back(static_cast<char>(m >> 8));
    framed.push_back(static_cast<char>(m));
    framed += reply;
    asio::post(strand_, [self = shared_from_this(), framed = std::move(framed)]() mutable {
      self->queue_.push_back(std::move(framed));
      if (self->queue_.size() == 1) self->WriteNext();
    });
  }

  void WriteNext() {
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      asio::bind_executor(strand_, [self = shared_from_this()](
                                                       boost::system::error_code ec, size_t) {
                        self->queue_.pop_front();
                        if (ec) {
                          self->queue_.clear();
                          return;
                        }
                        if (!self->queue_.empty()) self->WriteNext();
                      }));
  }

  tcp::socket socket_;
  asio::strand<tcp::socket::executor_type> strand_;
  asio::thread_pool* workers_;
  const RpcHandler* handler_;
  const size_t max_record_;
  Peer peer_;
  unsigned char mark_[4];
  bool last_ = false;
  std::string record_;             // the record being reassembled
  std::deque<std::string> queue_;  // replies to write, on the strand
};

}  // namespace

class RpcServer::Impl {
 public:
  Impl(const RpcServerOptions& o, RpcHandler handler)
      : options_(o),
        handler_(std::move(handler)),
        workers_(std::max(1, o.threads)),
        acceptor_(io_),
        udp_(io_) {}

  ~Impl() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      udp_.close(ec);
      std::lock_guard<std::mutex> g(mu_);
      for (auto& w : connections_) {
        if (auto c = w.lock()) c->Close();
      }
    });
    work_.reset();
    // Connections end when their sockets close; the io threads then run out.
    for (auto& t : io_threads_) t.join();
    workers_.join();
  }

  Status Listen() {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(options_.address, ec);
    if (ec) return Status::InvalidArgument("bad address " + options_.address);
    // Port 0: TCP picks a port, UDP takes the same one; when another
    // socket holds that UDP port, try again with another.
    for (int attempt = 0;; ++attempt) {
      tcp::endpoint ep(addr, options_.port);
      acceptor_.open(ep.protocol(), ec);
      if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor_.bind(ep, ec);
      if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return Status::Unavailable("cannot listen on " + options_.address + ":" +
                                   std::to_string(options_.port) + ": " + ec.message());
      }
      port_ = acceptor_.local_endpoint().port();
      if (!options_.udp) break;
      udp::endpoint uep(addr, port_);
      udp_.open(uep.protocol(), ec);
      if (!ec) udp_.bind(uep, ec);
      if (!ec) break;
      boost::system::error_code ignored;
      udp_.close(ignored);
      acceptor_.close(ignored);
      if (options_.port != 0 || attempt == 20) {
        return Status::Unavailable("cannot bind UDP " + options_.address + ":" +
                                   std::to_string(port_) + ": " + ec.message());
      }
    }
    Accept();
    if (options_.udp) ReceiveDatagram();
    for (int i = 0; i < 2; ++i) io_threads_.emplace_back([this] { io_.run(); });
    return Status::OK();
  }

  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        spdlog::warn("nfsd.accept: {}", ec.message());
      } else {
        auto c = std::make_shared<Connection>(std::move(socket), &workers_, &handler_,
                                              options_.max_record_bytes);
        {
          std::lock_guard<std::mutex> g(mu_);
          // Forget connections that ended.
          for (auto it = connections_.begin(); it != connections_.end();) {
            it = it->expired() ? connections_.erase(it) : std::next(it);
          }
          connections_.push_back(c);
        }
        c->Start();
      }
      Accept();
    });
  }

  /// One datagram = one record (RFC 5531 section 11 frames only streams).
  void ReceiveDatagram() {
    udp_.async_receive_from(asio::buffer(datagram_), sender_,
                            [this](boost::system::error_code ec, size_t n) {
                              if (ec) {
                                if (ec == asio::error::operation_aborted || !udp_.is_open()) return;
                                spdlog::warn("nfsd.udp_receive: {}", ec.message());
                              } else {
                                auto record = std::make_shared<std::string>(datagram_.data(), n);
                                asio::post(workers_, [this, record, to = sender_] {
                                  Peer peer;
                                  peer.address = AddressText(to.address());
                                  peer.port = to.port();
                                  peer.datagram = true;
                                  std::optional<std::string> reply = handler_(*record, peer);
                                  if (!reply || reply->empty())
                                    return;  // nothing to answer (or no call)
                                  if (reply->size() > kMaxDatagramBytes) {
                                    spdlog::warn("nfsd.udp_reply_too_large peer={}:{} bytes={}",
                                                 peer.address, peer.port, reply->size());
                                    return;
                                  }
                                  std::lock_guard<std::mutex> g(udp_send_mu_);
                                  boost::system::error_code ignored;
                                  udp_.send_to(asio::buffer(*reply), to, 0, ignored);
                                });
                              }
                              ReceiveDatagram();
                            });
  }

  RpcServerOptions options_;
  RpcHandler handler_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  asio::thread_pool workers_;
  tcp::acceptor acceptor_;
  udp::socket udp_;
  std::array<char, 65536> datagram_;  // the datagram being received
  udp::endpoint sender_;              // its sender
  std::mutex udp_send_mu_;
  uint16_t port_ = 0;
  std::vector<std::thread> io_threads_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Connection>> connections_;  // GUARDED_BY(mu_)
};

RpcServer::RpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RpcServer::~RpcServer() = default;

StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(const RpcServerOptions& options,
                                                      RpcHandler handler) {
  auto impl = std::make_unique<Impl>(options, std::move(handler));
  NEEDLEFS_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<RpcServer>(new RpcServer(std::move(impl)));
}

uint16_t RpcServer::port() const { return impl_->port(); }

}  // namespace needlefs::nfsd
