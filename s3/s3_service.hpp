// S3Service: what every S3 operation shares — resolved configuration, the signer, the endpoints with their
// load-balancing policy and cool-downs, and the shape of a request for (bucket, key, query). A bucket's requests go
// through its BucketRouter (an HttpClient per endpoint, resolved when the router is made, never on a ring); each
// request carries an S3 policy that signs every attempt with SigV4 and reads S3's error documents once.
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

// An S3 operation's call: the request and the signing policy it carries.
class S3Call : public http::Call {
 public:
  std::shared_ptr<const http::ResponsePolicy> signing;
};

// Optional hooks of S3Service::execute_all. on_done sees each call's outcome from an engine thread. When *cancel
// becomes true no further call is started and on_cancel runs once on the calling thread while the calls in flight
// finish (their failures then count as consequences of the cancel); the result is Error(kCancelled) unless an
// error came before the cancel.
struct ExecuteAllHooks {
  const std::atomic<bool>* cancel = nullptr;
  std::function<void()> on_cancel;
  std::function<void(const http::Call&, const Status&)> on_done;
};

class S3Service {
 public:
  static Status create(Engine::Impl& engine, const S3Options& options, const HttpOptions& http,
                       std::shared_ptr<S3Service>* out);
  ~S3Service();

  // The router of `bucket`'s requests (made, and its hosts resolved, on first use: from a non-engine thread).
  Status router(const std::string& bucket, std::shared_ptr<http::Router>* out);

  // Fills path, query, display and the signing policy of `call` for bucket/key (key may be empty).
  // payload_sha256: hex digest of the body, or kUnsignedPayload.
  void prepare(S3Call& call, const std::string& bucket, const std::string& key, QueryParams query,
               std::string payload_sha256 = std::string(kUnsignedPayload));
  // The same for an object read by ranged GETs: its path and the policy every GET of it carries.
  std::shared_ptr<const http::ResponsePolicy> object_request(const std::string& bucket, const std::string& key,
                                                             std::string* path);

  Status execute(S3Call& call, const std::string& bucket);
  // Runs prepared calls with at most `parallel` in flight (from a non-engine thread); returns the first error.
  Status execute_all(std::vector<S3Call*>& calls, const std::string& bucket, unsigned parallel,
                     const ExecuteAllHooks& hooks = {});

  const AwsConfig& config() const noexcept { return config_; }
  const S3Options& options() const noexcept { return options_; }
  Engine::Impl& engine() const noexcept { return engine_; }
  size_t endpoint_count() const noexcept { return endpoints_.size(); }
  // Attempts started per endpoint so far (for tests and stats).
  std::vector<uint64_t> requests_per_endpoint() const;

 private:
  struct EndpointState;
  class BucketRouter;
  S3Service(Engine::Impl& engine, S3Options options, HttpOptions http);
  // Request path (as signed, not encoded) of bucket/key under the endpoints' common path.
  std::string raw_path(const std::string& bucket, const std::string& key) const;
  std::shared_ptr<const http::ResponsePolicy> signing(std::string raw_path, QueryParams query,
                                                      std::string payload_sha256) const;
  // By policy among the endpoints not in `avoid`, preferring those not cooling down.
  uint32_t pick_endpoint(uint64_t avoid);

  Engine::Impl& engine_;
  S3Options options_;
  HttpOptions http_;
  AwsConfig config_;
  std::unique_ptr<SigV4Signer> signer_;
  std::vector<std::unique_ptr<EndpointState>> endpoints_;
  std::mutex routers_mutex_;
  std::map<std::string, std::shared_ptr<BucketRouter>> routers_;  // by bucket ("" for path style)
  std::atomic<uint64_t> next_{0};
  std::mutex random_mutex_;
  std::minstd_rand random_{std::random_device{}()};
  int64_t rank_ = -1;
};

}  // namespace ringfetch::s3
