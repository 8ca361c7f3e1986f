// S3Service implementation: configuration, endpoint choice (round-robin / random / least-outstanding, rank
// pinning, cool-down of failing endpoints, fail-over of a call to another endpoint), SigV4 on every attempt, and S3
// error documents as statuses.
#include "s3/s3_service.hpp"

#include <algorithm>
#include <functional>
#include <future>

#include "engine/url.hpp"
#include "s3/xml_document.hpp"

namespace ringfetch::s3 {
namespace {

constexpr uint64_t kNsPerMs = 1'000'000;

std::string code_for_status(int status) {
  switch (status) {
    case 301: return "PermanentRedirect";
    case 400: return "BadRequest";
    case 403: return "AccessDenied";
    case 404: return "NoSuchKey";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 416: return "InvalidRange";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    default: return "HTTP" + std::to_string(status);
  }
}

struct ParsedError {
  std::string code, message, request_id;
};

ParsedError parse_error(const http::ResponseHead& head, const std::string& body) {
  ParsedError e;
  XmlDocument doc;
  if (!body.empty() && XmlDocument::parse(body, &doc).ok() && doc.root()->name == "Error") {
    e.code = doc.root()->child_text("Code");
    e.message = doc.root()->child_text("Message");
    e.request_id = doc.root()->child_text("RequestId");
  }
  if (e.code.empty()) e.code = code_for_status(head.status);
  if (e.request_id.empty()) {
    if (auto id = head.find("x-amz-request-id")) e.request_id = std::string(*id);
  }
  return e;
}

int64_t rank_from(const EnvironmentLookup& env) {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "RANK", "SLURM_PROCID"}) {
    if (auto value = env(name); value && !value->empty()) {
      try {
        return std::stoll(*value);
      } catch (const std::exception&) {
      }
    }
  }
  return -1;
}

bool network_failure(const Status& status) {
  return status.kind() == ErrorKind::kNetwork || status.kind() == ErrorKind::kTimeout;
}

}  // namespace

Status s3_error(const http::ResponseHead& head, const std::string& body, const std::string& what) {
  const ParsedError e = parse_error(head, body);
  std::string message = what + ": " + e.code + " (HTTP " + std::to_string(head.status) + ")";
  if (!e.message.empty()) message += ": " + e.message;
  if (!e.request_id.empty()) message += " [RequestId " + e.request_id + "]";
  return Status(ErrorKind::kS3, message, head.status, e.code, e.request_id);
}

bool s3_retryable(const http::ResponseHead& head, const std::string& body) {
  if (http::is_retryable_http_status(head.status)) return true;
  const std::string code = parse_error(head, body).code;
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" || code == "ServiceUnavailable";
}

struct S3Service::EndpointState {
  engine::Url url;
  std::string text;
  bool path_style = true;
  std::shared_ptr<http::TlsContext> tls;
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<http::HttpClient>> clients;  // by bucket ("" for path style)
  std::atomic<uint64_t> outstanding{0};
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> down_until_ns{0};
};

Status S3Service::create(Engine::Impl& engine, const S3Options& options, const HttpOptions& http,
                         std::shared_ptr<S3Service>* out) {
  std::shared_ptr<S3Service> service(new S3Service(engine, options, http));
  AwsConfigOptions config_options;
  config_options.profile = options.profile;
  config_options.anonymous = options.anonymous;
  config_options.addressing_style = options.addressing_style;
  config_options.environment = options.environment ? options.environment : process_environment();
  Status resolved = resolve_aws_config(config_options, &service->config_);
  if (!resolved.ok()) return resolved;
  if (!options.region.empty()) service->config_.region = options.region;
  // A comma-separated list (in AWS_ENDPOINT_URL_S3, say) names several endpoints, as several entries would.
  std::vector<std::string> urls;
  for (const std::string& entry :
       options.endpoints.empty() ? std::vector<std::string>{service->config_.endpoint} : options.endpoints) {
    std::string_view rest = entry;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view one = rest.substr(0, comma);
      if (!one.empty()) urls.emplace_back(one);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  if (urls.empty()) return Status(ErrorKind::kInvalidArgument, "no S3 endpoint given (an empty endpoint list)");
  for (const std::string& text : urls) {
    auto state = std::make_unique<EndpointState>();
    state->text = text;
    Status parsed = engine::parse_url(text, &state->url);
    if (!parsed.ok()) return parsed;
    if (state->url.scheme != "http" && state->url.scheme != "https") {
      return Status(ErrorKind::kInvalidArgument, "S3 endpoint '" + text + "' must be an http:// or https:// URL");
    }
    const bool forced = endpoint_requires_path_style(text);
    state->path_style = forced || options.addressing_style == AddressingStyle::kPath ||
                        (options.addressing_style == AddressingStyle::kAuto &&
                         service->config_.addressing_style == AddressingStyle::kPath);
    if (!service->endpoints_.empty() && service->endpoints_.front()->path_style != state->path_style) {
      return Status(ErrorKind::kInvalidArgument, "S3 endpoints mix path-style and virtual-host addressing: '" +
                                                     service->endpoints_.front()->text + "' and '" + text + "'");
    }
    // prepare() builds one request path for every endpoint, so they must agree on the path below the host.
    auto base_path = [](std::string path) {
      while (!path.empty() && path.back() == '/') path.pop_back();
      return path;
    };
    if (!service->endpoints_.empty() &&
        base_path(service->endpoints_.front()->url.path) != base_path(state->url.path)) {
      return Status(ErrorKind::kInvalidArgument, "S3 endpoints differ in their path: '" +
                                                     service->endpoints_.front()->text + "' and '" + text + "'");
    }
    if (state->url.scheme == "https") {
      http::TlsOptions tls_options;
      tls_options.verify = http.verify_tls;
      tls_options.ca_file = http.ca_file;
      // As awscli: for S3, AWS_CA_BUNDLE outranks SSL_CERT_FILE (which TlsContext falls back to).
      if (tls_options.ca_file.empty()) {
        const std::optional<std::string> bundle = config_options.environment("AWS_CA_BUNDLE");
        if (bundle && !bundle->empty()) tls_options.ca_file = *bundle;
      }
      Status created = http::TlsContext::create(tls_options, &state->tls);
      if (!created.ok()) return created;
    }
    service->endpoints_.push_back(std::move(state));
  }
  service->signer_ = std::make_unique<SigV4Signer>(service->config_.credentials, service->config_.region);
  if (options.pin_by_rank) service->rank_ = rank_from(config_options.environment);
  *out = std::move(service);
  return {};
}

S3Service::S3Service(Engine::Impl& engine, S3Options options, HttpOptions http)
    : engine_(engine), options_(std::move(options)), http_(std::move(http)) {}

S3Service::~S3Service() = default;

http::HttpClient* S3Service::client_for(size_t index, const std::string& bucket, Status* status) {
  EndpointState& e = *endpoints_[index];
  const std::string key = e.path_style ? std::string() : bucket;
  std::lock_guard lock(e.mutex);
  auto it = e.clients.find(key);
  if (it != e.clients.end()) return it->second.get();
  http::Endpoint endpoint;
  endpoint.host = e.path_style ? e.url.host : bucket + "." + e.url.host;
  endpoint.port = e.url.port;
  endpoint.tls = e.url.scheme == "https";
  endpoint.ip_literal = e.url.ipv6_literal || e.url.host.find_first_not_of("0123456789.") == std::string::npos;
  engine::Url host_url = e.url;
  host_url.host = endpoint.host;
  endpoint.host_header = host_url.host_header();
  *status = http::resolve_endpoint(&endpoint);
  // A client with no addresses must not be cached: every later call would connect to nothing.
  if (!status->ok()) return nullptr;
  auto client = std::make_unique<http::HttpClient>(engine_, std::move(endpoint), http_, e.tls);
  http::HttpClient* ref = client.get();
  e.clients.emplace(key, std::move(client));
  return ref;
}

void S3Service::prepare(http::HttpCall& call, const std::string& bucket, const std::string& key, QueryParams query,
                        std::string payload_sha256) {
  const EndpointState& first = *endpoints_.front();
  std::string prefix = first.url.path;  // "http://host/s3/" and "http://host/s3" both put requests under /s3/
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  std::string raw_path = prefix + (first.path_style ? "/" + bucket : std::string());
  if (!key.empty() || !first.path_style) raw_path += "/" + key;
  SignableRequest shape;
  shape.path = raw_path;
  shape.query = query;
  const std::string target = request_target(shape);
  const size_t question = target.find('?');
  call.path = target.substr(0, question);
  call.query = question == std::string::npos ? std::string() : target.substr(question + 1);
  call.display = call.method + " s3://" + bucket + "/" + key;
  if (!query.empty()) call.display += "?" + call.query;
  const SigV4Signer* signer = signer_.get();
  call.decorate = [signer, raw_path, query = std::move(query), payload = std::move(payload_sha256)](
                      http::RequestHead& head) -> Status {
    SignableRequest request;
    request.method = head.method;
    request.host = head.host;
    request.path = raw_path;
    request.query = query;
    for (const auto& field : head.fields) request.headers.emplace_back(field.name, field.value);
    request.payload_sha256 = payload;
    signer->sign(request, std::chrono::system_clock::now());
    head.fields.clear();
    for (auto& [name, value] : request.headers) head.fields.push_back({std::move(name), std::move(value)});
    return {};
  };
  call.error_for_status = &s3_error;
  call.retryable_status = &s3_retryable;
}

size_t S3Service::pick_endpoint(const std::vector<size_t>& tried) {
  const size_t n = endpoints_.size();
  if (n == 1) return 0;
  const uint64_t now = engine::monotonic_ns();
  std::vector<size_t> candidates;
  for (size_t i = 0; i < n; ++i)
    if (std::find(tried.begin(), tried.end(), i) == tried.end()) candidates.push_back(i);
  std::vector<size_t> up;
  for (size_t i : candidates)
    if (endpoints_[i]->down_until_ns.load() <= now) up.push_back(i);
  if (up.empty()) up = candidates;  // all cooling down: try them anyway rather than fail
  if (rank_ >= 0) {
    const size_t pinned = static_cast<size_t>(rank_) % n;
    if (std::find(up.begin(), up.end(), pinned) != up.end()) return pinned;
  }
  switch (options_.policy) {
    case EndpointPolicy::kRoundRobin:
      return up[next_.fetch_add(1) % up.size()];
    case EndpointPolicy::kRandom: {
      std::lock_guard lock(random_mutex_);
      return up[std::uniform_int_distribution<size_t>(0, up.size() - 1)(random_)];
    }
    case EndpointPolicy::kLeastOutstanding: {
      // Ties go round (as in nginx's least_conn); scanning from the front would send all light traffic to one.
      const size_t first = next_.fetch_add(1);
      size_t best = up[first % up.size()];
      for (size_t k = 1; k < up.size(); ++k) {
        const size_t i = up[(first + k) % up.size()];
        if (endpoints_[i]->outstanding.load() < endpoints_[best]->outstanding.load()) best = i;
      }
      return best;
    }
  }
  return up.front();
}

// One call on its way through the endpoints: the caller's completion, where it runs now, where it has failed.
struct S3Service::Route {
  std::function<void(const Status&)> done;
  std::string bucket;
  size_t endpoint = 0;
  std::vector<size_t> tried;
};

void S3Service::start(engine::Worker& worker, http::HttpCall* call, const std::string& bucket) {
  auto route = std::make_shared<Route>();
  route->done = std::move(call->done);
  route->bucket = bucket;
  // Installed once for the whole route, so a fail-over never replaces the function that is running.
  call->done = [this, &worker, call, route](const Status& status) { on_endpoint_done(worker, call, route, status); };
  dispatch(worker, call, *route);
}

void S3Service::dispatch(engine::Worker& worker, http::HttpCall* call, Route& route) {
  route.endpoint = pick_endpoint(route.tried);
  EndpointState& e = *endpoints_[route.endpoint];
  e.outstanding.fetch_add(1);
  e.started.fetch_add(1);
  Status status;
  http::HttpClient* client = client_for(route.endpoint, route.bucket, &status);
  if (client == nullptr) {
    call->done(status);
    return;
  }
  client->start(worker, call);
}

void S3Service::on_endpoint_done(engine::Worker& worker, http::HttpCall* call, const std::shared_ptr<Route>& route,
                                 const Status& status) {
  EndpointState& e = *endpoints_[route->endpoint];
  e.outstanding.fetch_sub(1);
  if (!status.ok() && network_failure(status)) {
    e.down_until_ns.store(engine::monotonic_ns() + uint64_t{options_.endpoint_cooldown_ms} * kNsPerMs);
    route->tried.push_back(route->endpoint);
    if (route->tried.size() < endpoints_.size()) {
      dispatch(worker, call, *route);  // a fresh exchange; a ranged GET starts its range again
      return;
    }
  }
  // The caller's completion may destroy the call, and with it this route: run it from here.
  std::function<void(const Status&)> done = std::move(route->done);
  if (!status.ok() && route->tried.size() > 1) {
    done(Status(status.kind(),
                status.message() + " (every endpoint failed: " + std::to_string(route->tried.size()) + " tried)",
                status.http_status(), status.s3_code(), status.request_id()));
    return;
  }
  done(status);
}

Status S3Service::execute(http::HttpCall& call, const std::string& bucket) {
  std::promise<Status> result;
  call.done = [&result](const Status& status) { result.set_value(status); };
  engine::Worker& worker = engine_.pick_worker();
  worker.post([this, &worker, &call, &bucket] { start(worker, &call, bucket); });
  return result.get_future().get();
}

Status S3Service::execute_all(std::vector<http::HttpCall*>& calls, const std::string& bucket, unsigned parallel,
                              const ExecuteAllHooks& hooks) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<http::HttpCall*> calls;
    std::string bucket;
    const std::atomic<bool>* cancel = nullptr;
    std::function<void(const http::HttpCall&, const Status&)> on_done;
    size_t next = 0;
    size_t running = 0;
    Status first_error;
    bool cancelled() const { return cancel != nullptr && cancel->load(); }
    // Under the lock: the next call to start, or nullptr when done, cancelled or after the first error.
    http::HttpCall* take() {
      if (next >= calls.size() || !first_error.ok() || cancelled()) return nullptr;
      ++running;
      return calls[next++];
    }
  };
  auto shared = std::make_shared<Shared>();
  shared->calls = calls;
  shared->bucket = bucket;
  shared->cancel = hooks.cancel;
  shared->on_done = hooks.on_done;
  // Each completion starts the next call itself; nothing here refers to this stack frame once it returns.
  auto run = std::make_shared<std::function<void(http::HttpCall*)>>();
  *run = [this, shared, weak_run = std::weak_ptr<std::function<void(http::HttpCall*)>>(run)](http::HttpCall* call) {
    call->done = [shared, weak_run, call](const Status& status) {
      if (shared->on_done) shared->on_done(*call, status);
      http::HttpCall* next;
      {
        std::lock_guard lock(shared->mutex);
        --shared->running;
        // After a cancel, failures are its consequences (an aborted upload's parts answer NoSuchUpload).
        if (!status.ok() && shared->first_error.ok() && !shared->cancelled()) shared->first_error = status;
        next = shared->take();
      }
      if (next != nullptr) {
        if (auto again = weak_run.lock()) (*again)(next);
      }
      shared->changed.notify_all();
    };
    engine::Worker& worker = engine_.pick_worker();
    worker.post([this, &worker, call, shared] { start(worker, call, shared->bucket); });
  };
  for (unsigned i = 0; i < std::max(1u, parallel); ++i) {
    http::HttpCall* call;
    {
      std::lock_guard lock(shared->mutex);
      call = shared->take();
    }
    if (call == nullptr) break;
    (*run)(call);
  }
  // A cancel flag has no way to wake this wait, so it is polled: kCancelPollMs is what a cancel may wait on top.
  constexpr auto kCancelPoll = std::chrono::milliseconds(20);
  bool cancel_seen = false;
  std::unique_lock lock(shared->mutex);
  while (shared->running > 0) {
    shared->changed.wait_for(lock, kCancelPoll);
    if (!cancel_seen && shared->cancelled()) {
      cancel_seen = true;
      if (hooks.on_cancel) {
        lock.unlock();
        hooks.on_cancel();
        lock.lock();
      }
    }
  }
  if (shared->first_error.ok() && shared->cancelled()) {
    return Status(ErrorKind::kCancelled, "cancelled after " + std::to_string(shared->next) + " of " +
                                             std::to_string(shared->calls.size()) + " requests were started");
  }
  return shared->first_error;
}

std::vector<uint64_t> S3Service::requests_per_endpoint() const {
  std::vector<uint64_t> out;
  for (const auto& e : endpoints_) out.push_back(e->started.load());
  return out;
}

}  // namespace ringfetch::s3
