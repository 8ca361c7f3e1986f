// S3Service implementation: configuration, endpoint choice (round-robin / random / least-outstanding, rank
// pinning, cool-down of endpoints that fail on the network), routers per bucket, and the S3 request policy (SigV4
// on every attempt, error documents read once).
#include "s3/s3_service.hpp"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <future>

#include "engine/url.hpp"
#include "s3/s3_errors.hpp"

namespace ringfetch::s3 {
namespace {

constexpr uint64_t kNsPerMs = 1'000'000;

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

// The policy of every S3 request: SigV4 on each attempt (the date changes between attempts), S3's error document
// read once per answer.
class S3RequestPolicy final : public http::ResponsePolicy {
 public:
  S3RequestPolicy(const SigV4Signer* signer, std::string raw_path, QueryParams query, std::string payload)
      : signer_(signer), raw_path_(std::move(raw_path)), query_(std::move(query)), payload_(std::move(payload)) {}

  Status decorate(const http::Call&, http::RequestHead& head) const override {
    SignableRequest request;
    request.method = head.method;
    request.host = head.host;
    request.path = raw_path_;
    request.query = query_;
    for (const auto& field : head.fields) request.headers.emplace_back(field.name, field.value);
    request.payload_sha256 = payload_;
    signer_->sign(request, std::chrono::system_clock::now());
    head.fields.resize(request.headers.size());
    for (size_t i = 0; i < request.headers.size(); ++i) {
      head.fields[i].name = std::move(request.headers[i].first);
      head.fields[i].value = std::move(request.headers[i].second);
    }
    return {};
  }

  http::Judgement judge(const http::ResponseHead& head, std::string_view body, const std::string& what) const override {
    const S3ErrorInfo error = parse_s3_error(head, body);
    return {s3_status(error, head.reason(), what), error.retryable};
  }

 private:
  const SigV4Signer* signer_;
  std::string raw_path_;
  QueryParams query_;
  std::string payload_;
};

}  // namespace

struct S3Service::EndpointState {
  engine::Url url;
  std::string text;
  bool path_style = true;
  std::shared_ptr<http::TlsContext> tls;
  std::atomic<uint64_t> outstanding{0};
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> down_until_ns{0};
};

// A bucket's requests: one HttpClient per endpoint (for bucket.host in virtual-host style).
class S3Service::BucketRouter final : public http::Router {
 public:
  explicit BucketRouter(S3Service& service) : service_(service) {}
  std::vector<std::unique_ptr<http::HttpClient>> clients;

  http::Route route(uint64_t avoid) override {
    const uint32_t i = service_.pick_endpoint(avoid);
    EndpointState& e = *service_.endpoints_[i];
    e.outstanding.fetch_add(1);
    e.started.fetch_add(1);
    return {clients[i].get(), i};
  }
  void attempt_ended(const http::Route& route, bool network_failure) override {
    EndpointState& e = *service_.endpoints_[route.endpoint];
    e.outstanding.fetch_sub(1);
    if (network_failure) {
      e.down_until_ns.store(engine::monotonic_ns() + uint64_t{service_.options_.endpoint_cooldown_ms} * kNsPerMs);
    }
  }
  uint32_t endpoint_count() const override { return static_cast<uint32_t>(clients.size()); }
  const HttpOptions& options() const override { return service_.http_; }
  Engine::Impl& engine() const override { return service_.engine_; }
  http::RequestTiming* timing() override { return &timing_; }

 private:
  S3Service& service_;
  http::RequestTiming timing_{service_.http_};
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

Status S3Service::router(const std::string& bucket, std::shared_ptr<http::Router>* out) {
  const std::string key = endpoints_.front()->path_style ? std::string() : bucket;
  std::lock_guard lock(routers_mutex_);
  if (auto it = routers_.find(key); it != routers_.end()) {
    *out = it->second;
    return {};
  }
  auto router = std::make_shared<BucketRouter>(*this);
  for (const auto& e : endpoints_) {
    engine::Url host_url = e->url;
    if (!e->path_style) host_url.host = bucket + "." + e->url.host;
    http::Endpoint endpoint =
        http::endpoint_for(e->url.scheme, host_url.host, e->url.port, e->url.ipv6_literal, host_url.host_header());
    std::unique_ptr<http::HttpClient> client;
    // A router with an endpoint that does not resolve is not cached: the next call looks it up again.
    if (Status status = http::HttpClient::create(engine_, std::move(endpoint), http_, e->tls, &client); !status.ok()) {
      return status;
    }
    router->clients.push_back(std::move(client));
  }
  routers_.emplace(key, router);
  *out = std::move(router);
  return {};
}

std::string S3Service::raw_path(const std::string& bucket, const std::string& key) const {
  const EndpointState& first = *endpoints_.front();
  std::string prefix = first.url.path;  // "http://host/s3/" and "http://host/s3" both put requests under /s3/
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  std::string path = prefix + (first.path_style ? "/" + bucket : std::string());
  if (!key.empty() || !first.path_style) path += "/" + key;
  return path;
}

std::shared_ptr<const http::ResponsePolicy> S3Service::signing(std::string raw_path, QueryParams query,
                                                               std::string payload_sha256) const {
  return std::make_shared<S3RequestPolicy>(signer_.get(), std::move(raw_path), std::move(query),
                                           std::move(payload_sha256));
}

void S3Service::prepare(S3Call& call, const std::string& bucket, const std::string& key, QueryParams query,
                        std::string payload_sha256) {
  SignableRequest shape;
  shape.path = raw_path(bucket, key);
  shape.query = query;
  const std::string target = request_target(shape);
  const size_t question = target.find('?');
  call.request.path = target.substr(0, question);
  call.request.query = question == std::string::npos ? std::string() : target.substr(question + 1);
  call.request.display = call.request.method + " s3://" + bucket + "/" + key;
  if (!query.empty()) call.request.display += "?" + call.request.query;
  call.signing = signing(std::move(shape.path), std::move(query), std::move(payload_sha256));
  call.policy = call.signing.get();
}

std::shared_ptr<const http::ResponsePolicy> S3Service::object_request(const std::string& bucket, const std::string& key,
                                                                      std::string* path) {
  SignableRequest shape;
  shape.path = raw_path(bucket, key);
  *path = request_target(shape);
  return signing(std::move(shape.path), {}, std::string(kUnsignedPayload));
}

uint32_t S3Service::pick_endpoint(uint64_t avoid) {
  const size_t n = endpoints_.size();
  if (n == 1) return 0;
  const uint64_t now = engine::monotonic_ns();
  std::vector<uint32_t> candidates;
  for (uint32_t i = 0; i < n; ++i)
    if ((avoid & (1ull << i)) == 0) candidates.push_back(i);
  if (candidates.empty())
    for (uint32_t i = 0; i < n; ++i) candidates.push_back(i);  // every one failed this call: any may work now
  std::vector<uint32_t> up;
  for (uint32_t i : candidates)
    if (endpoints_[i]->down_until_ns.load() <= now) up.push_back(i);
  if (up.empty()) up = candidates;  // all cooling down: try them anyway rather than fail
  if (rank_ >= 0) {
    const auto pinned = static_cast<uint32_t>(static_cast<size_t>(rank_) % n);
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
      uint32_t best = up[first % up.size()];
      for (size_t k = 1; k < up.size(); ++k) {
        const uint32_t i = up[(first + k) % up.size()];
        if (endpoints_[i]->outstanding.load() < endpoints_[best]->outstanding.load()) best = i;
      }
      return best;
    }
  }
  return up.front();
}

Status S3Service::execute(S3Call& call, const std::string& bucket) {
  std::shared_ptr<http::Router> router;
  if (Status status = this->router(bucket, &router); !status.ok()) return status;
  return call.run(*router);
}

namespace {

// The calls of one execute_all. Completions start the next call themselves; the waiting thread returns once none
// runs, and a completion touches the batch only while it counts as running (it notifies under the lock).
struct CallBatch {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<S3Call*> calls;
  http::Router* router = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  const std::function<void(const http::Call&, const Status&)>* on_done = nullptr;
  size_t next = 0;
  size_t running = 0;
  Status first_error;

  bool cancelled() const { return cancel != nullptr && cancel->load(); }
  // Under the lock: the next call to start, or nullptr when done, cancelled or after the first error.
  S3Call* take() {
    if (next >= calls.size() || !first_error.ok() || cancelled()) return nullptr;
    ++running;
    return calls[next++];
  }
  void launch(S3Call* call) {
    call->done = &CallBatch::on_call_done;
    call->done_context = this;
    engine::Worker& worker = router->engine().pick_worker();
    worker.post([this, &worker, call] { call->start(worker, *router); });
  }
  static void on_call_done(http::Call& call, void* context, const Status& status) {
    auto* batch = static_cast<CallBatch*>(context);
    if (*batch->on_done) (*batch->on_done)(call, status);
    S3Call* next;
    {
      std::lock_guard lock(batch->mutex);
      --batch->running;
      // After a cancel, failures are its consequences (an aborted upload's parts answer NoSuchUpload).
      if (!status.ok() && batch->first_error.ok() && !batch->cancelled()) batch->first_error = status;
      next = batch->take();
      if (next == nullptr) {
        batch->changed.notify_all();
        return;
      }
    }
    batch->launch(next);
  }
};

}  // namespace

Status S3Service::execute_all(std::vector<S3Call*>& calls, const std::string& bucket, unsigned parallel,
                              const ExecuteAllHooks& hooks) {
  std::shared_ptr<http::Router> router;
  if (Status status = this->router(bucket, &router); !status.ok()) return status;
  CallBatch batch;
  batch.calls = calls;
  batch.router = router.get();
  batch.cancel = hooks.cancel;
  batch.on_done = &hooks.on_done;
  for (unsigned i = 0; i < std::max(1u, parallel); ++i) {
    S3Call* call;
    {
      std::lock_guard lock(batch.mutex);
      call = batch.take();
    }
    if (call == nullptr) break;
    batch.launch(call);
  }
  // A cancel flag has no way to wake this wait, so it is polled: kCancelPoll is what a cancel may wait on top.
  constexpr auto kCancelPoll = std::chrono::milliseconds(20);
  bool cancel_seen = false;
  std::unique_lock lock(batch.mutex);
  while (batch.running > 0) {
    batch.changed.wait_for(lock, kCancelPoll);
    if (!cancel_seen && batch.cancelled()) {
      cancel_seen = true;
      if (hooks.on_cancel) {
        lock.unlock();
        hooks.on_cancel();
        lock.lock();
      }
    }
  }
  if (batch.first_error.ok() && batch.cancelled()) {
    return Status(ErrorKind::kCancelled, "cancelled after " + std::to_string(batch.next) + " of " +
                                             std::to_string(batch.calls.size()) + " requests were started");
  }
  return batch.first_error;
}

std::vector<uint64_t> S3Service::requests_per_endpoint() const {
  std::vector<uint64_t> out;
  for (const auto& e : endpoints_) out.push_back(e->started.load());
  return out;
}

}  // namespace ringfetch::s3
