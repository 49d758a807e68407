// Private to src/common: socket and Beast helpers shared by the HTTP server
// (http_server.cc) and client (http_client.cc). Included only by those.
#pragma once

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

#include "common/http.h"
#include "common/internal/http_local.h"

namespace needlefs::http_internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

inline std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }
inline beast::string_view Bsv(std::string_view s) { return {s.data(), s.size()}; }

inline int Errno(const error_code& ec) {
  return ec.category() == boost::system::system_category() ? ec.value() : 0;
}

// Copies Beast fields into our map; repeated fields are joined with ", " (RFC 9110 5.3).
template <class Fields>
void CopyFields(const Fields& fields, HttpHeaders* out) {
  for (const auto& f : fields) {
    auto [it, inserted] = out->emplace(Str(f.name_string()), Str(f.value()));
    if (!inserted) it->second += ", " + Str(f.value());
  }
}

inline void SetTimeout(int fd, int optname, int ms) {
  if (ms <= 0) return;
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv));
}

inline void SetupSocket(int fd, int timeout_ms) {
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

}  // namespace needlefs::http_internal
