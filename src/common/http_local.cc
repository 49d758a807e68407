// The in-process path to an HttpServer (common/internal/http_local.h).
#include "common/internal/http_local.h"

#include <thread>
#include <unordered_map>
#include <vector>

namespace needlefs::http_internal {
namespace {

struct Registry {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<LocalHttpEndpoint>> endpoints;  // GUARDED_BY(mu)

  static Registry& Get() {
    static Registry* r = new Registry;  // never destroyed: used at exit
    return *r;
  }
};

/// The endpoints the calling thread is inside (a handler's own calls).
thread_local std::vector<const LocalHttpEndpoint*> t_inside;

}  // namespace

bool LocalHttpEndpoint::Enter() {
  std::lock_guard<std::mutex> g(mu_);
  if (stopped_) return false;
  ++running_;
  return true;
}

void LocalHttpEndpoint::Leave() {
  std::lock_guard<std::mutex> g(mu_);
  if (--running_ == 0) cv_.notify_all();
}

void LocalHttpEndpoint::Stop() {
  int own = 0;
  for (const auto* e : t_inside) own += e == this ? 1 : 0;
  std::unique_lock<std::mutex> l(mu_);
  stopped_ = true;
  cv_.wait(l, [&] { return running_ <= own; });
}

std::optional<HttpClientResponse> LocalHttpEndpoint::Call(const std::string& hostport,
                                                          std::string_view method,
                                                          std::string_view target,
                                                          std::string_view body,
                                                          const HttpHeaders& headers) {
  t_inside.reserve(t_inside.size() + 1);  // may throw: before the call is counted
  if (!Enter()) return std::nullopt;
  t_inside.push_back(this);  // no allocation: reserved
  struct Exit {
    LocalHttpEndpoint* e;
    ~Exit() {
      t_inside.pop_back();
      e->Leave();
    }
  } exit{this};

  HttpResponse res;
  if (body.size() > max_body_bytes_) {
    res = HttpResponse::Error(413, "request body too large");
  } else {
    HttpRequest req;
    req.method = std::string(method);
    SetTarget(target, &req);
    req.headers = headers;
    req.headers["Host"] = hostport;
    if (!body.empty() || method == "PUT" || method == "POST") {
      req.headers["Content-Length"] = std::to_string(body.size());
    }
    req.body = std::string(body);
    req.remote_address = "local";
    res = RunHandler(handler_, req);
  }
  HttpClientResponse out;
  out.status = res.status;
  out.headers["Server"] = server_name_;
  for (auto& [name, value] : res.headers) {
    if (ValidResponseHeader(name, value)) out.headers[name] = std::move(value);
  }
  const bool head = method == "HEAD";
  if (res.status == 204) {
    out.headers.erase("Content-Length");
  } else if (res.status == 304) {
    // header only, as the handler set it
  } else if (head) {
    if (res.content_length || !res.body.empty() || !out.headers.contains("Content-Length")) {
      out.headers["Content-Length"] = std::to_string(res.content_length.value_or(res.body.size()));
    }
  } else {
    out.headers["Content-Length"] = std::to_string(res.body.size());
    out.body = std::move(res.body);
  }
  return out;
}

void RegisterLocalHttp(const std::string& hostport, std::shared_ptr<LocalHttpEndpoint> e) {
  auto& r = Registry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  r.endpoints[hostport] = std::move(e);
}

void UnregisterLocalHttp(const std::string& hostport, const LocalHttpEndpoint* e) {
  auto& r = Registry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.endpoints.find(hostport);
  if (it != r.endpoints.end() && it->second.get() == e) r.endpoints.erase(it);
}

std::shared_ptr<LocalHttpEndpoint> FindLocalHttp(const std::string& hostport) {
  auto& r = Registry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  if (r.endpoints.empty()) return nullptr;
  auto it = r.endpoints.find(hostport);
  return it == r.endpoints.end() ? nullptr : it->second;
}

}  // namespace needlefs::http_internal
