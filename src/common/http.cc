// Plain helpers of the HTTP transport: header maps, JSON replies, query
// and percent decoding, host:port parsing.
#include "common/http.h"

#include <algorithm>

#include "common/internal/http_socket.h"

namespace needlefs {
namespace {

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

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
}  // namespace

namespace http_internal {

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

void SetTarget(std::string_view target, HttpRequest* req) {
  req->target = std::string(target);
  const size_t q = target.find('?');
  req->path = PercentDecode(target.substr(0, q));
  if (q != std::string_view::npos) req->query = ParseQuery(target.substr(q + 1));
}

bool ValidResponseHeader(const std::string& name, const std::string& value) {
  return !name.empty() && name.find_first_of("\r\n: ") == std::string::npos &&
         value.find_first_of("\r\n") == std::string::npos;
}

HttpResponse RunHandler(const HttpHandler& handler, HttpRequest& req) {
  HttpResponse res;
  try {
    res = handler(req);
  } catch (const std::exception& e) {
    res = HttpResponse::Error(500, std::string("internal error: ") + e.what());
  } catch (...) {
    res = HttpResponse::Error(500, "internal error");
  }
  if (res.status < 200 || res.status > 999) {
    res = HttpResponse::Error(500, "handler returned invalid status " + std::to_string(res.status));
  }
  return res;
}

}  // namespace http_internal

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
std::string JoinHostPort(std::string_view host, uint16_t port) {
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return h + ":" + std::to_string(port);
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
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
