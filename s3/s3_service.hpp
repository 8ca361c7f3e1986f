// S3Service: what every S3 operation shares — resolved configuration, the signer, the endpoint set with its
// load-balancing policy and cool-downs, and the turning of (bucket, key, query) into a signed HttpCall whose
// errors are S3's XML codes. Used by the s3:// source and by the public S3 client.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/engine_impl.hpp"
#include "http/http_client.hpp"
#include "ringfetch/s3/aws_config.hpp"
#include "ringfetch/s3/s3_options.hpp"
#include "ringfetch/s3/sigv4.hpp"

namespace ringfetch::s3 {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// S3's error document (or, for bodiless answers, the code implied by the status) as a Status of kind kS3.
Status s3_error(const http::ResponseHead& head, const std::string& body, const std::string& what);
// 5xx, 429, and the codes S3 documents as transient (SlowDown, RequestTimeout, InternalError, ...).
bool s3_retryable(const http::ResponseHead& head, const std::string& body);

// Optional hooks of S3Service::execute_all. on_done sees each call's outcome from an engine thread. When *cancel
// becomes true no further call is started and on_cancel runs once on the calling thread while the calls in flight
// finish (their failures then count as consequences of the cancel); the result is Error(kCancelled) unless an
// error came before the cancel.
struct ExecuteAllHooks {
  const std::atomic<bool>* cancel = nullptr;
  std::function<void()> on_cancel;
  std::function<void(const http::HttpCall&, const Status&)> on_done;
};

class S3Service {
 public:
  static Status create(Engine::Impl& engine, const S3Options& options, const HttpOptions& http,
                       std::shared_ptr<S3Service>* out);
  ~S3Service();

  // Fills path, query, signing and S3 error handling of `call` for bucket/key (key may be empty).
  // payload_sha256: hex digest of the body, or kUnsignedPayload.
  void prepare(http::HttpCall& call, const std::string& bucket, const std::string& key, QueryParams query,
               std::string payload_sha256 = std::string(kUnsignedPayload));

  // Runs a prepared call: picks an endpoint by policy, accounts for it, marks it down on network failure
  // (refused, reset, timed out once its attempts there are spent) and then moves the call to an endpoint it has not
  // tried yet, so one dead endpoint among several does not fail the call. S3 error answers never move a call.
  void start(engine::Worker& worker, http::HttpCall* call, const std::string& bucket);
  Status execute(http::HttpCall& call, const std::string& bucket);
  // Runs prepared calls with at most `parallel` in flight (from a non-engine thread); returns the first error.
  // See ExecuteAllHooks.
  Status execute_all(std::vector<http::HttpCall*>& calls, const std::string& bucket, unsigned parallel,
                     const ExecuteAllHooks& hooks = {});

  const AwsConfig& config() const noexcept { return config_; }
  const S3Options& options() const noexcept { return options_; }
  Engine::Impl& engine() const noexcept { return engine_; }
  size_t endpoint_count() const noexcept { return endpoints_.size(); }
  // Requests started per endpoint so far (for tests and stats).
  std::vector<uint64_t> requests_per_endpoint() const;

 private:
  struct EndpointState;
  struct Route;
  S3Service(Engine::Impl& engine, S3Options options, HttpOptions http);
  // By policy among the endpoints not in `tried`, preferring those not cooling down.
  size_t pick_endpoint(const std::vector<size_t>& tried);
  // nullptr (and *status) when the endpoint's host does not resolve; a failed resolution is not cached.
  http::HttpClient* client_for(size_t endpoint, const std::string& bucket, Status* status);
  void dispatch(engine::Worker& worker, http::HttpCall* call, Route& route);
  void on_endpoint_done(engine::Worker& worker, http::HttpCall* call, const std::shared_ptr<Route>& route,
                        const Status& status);

  Engine::Impl& engine_;
  S3Options options_;
  HttpOptions http_;
  AwsConfig config_;
  std::unique_ptr<SigV4Signer> signer_;
  std::vector<std::unique_ptr<EndpointState>> endpoints_;
  std::atomic<uint64_t> next_{0};
  std::mutex random_mutex_;
  std::minstd_rand random_{std::random_device{}()};
  int64_t rank_ = -1;
};

}  // namespace ringfetch::s3
