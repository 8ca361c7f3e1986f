// S3Options: how an S3 store or client finds its endpoints, credentials and region, and how it spreads requests
// over several endpoints. Anything left empty comes from the usual AWS environment and files.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ringfetch::s3 {

// Value of one environment variable, or std::nullopt when unset. Empty values count as unset, as in the AWS SDKs.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Reads the process environment (getenv).
EnvironmentLookup process_environment();
// Reads only `variables`; everything else is unset.
EnvironmentLookup environment_from(std::map<std::string, std::string> variables);

enum class AddressingStyle {
  kAuto,         // as configured (profile's s3.addressing_style), else virtual host
  kVirtualHost,  // https://bucket.s3.region.amazonaws.com/key
  kPath,         // https://s3.region.amazonaws.com/bucket/key
};


enum class EndpointPolicy {
  kRoundRobin,        // endpoints in turn
  kRandom,            // uniformly at random
  kLeastOutstanding,  // the endpoint with the fewest requests in flight from this process
};

struct S3Options {
  std::string profile;                // default: AWS_PROFILE, then "default"
  std::string region;                 // default: AWS_REGION, AWS_DEFAULT_REGION, the profile, us-east-1
  std::vector<std::string> endpoints;  // default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, config, AWS's endpoint
  AddressingStyle addressing_style = AddressingStyle::kAuto;  // path style is forced for IP/localhost endpoints
  bool anonymous = false;             // unsigned requests
  EndpointPolicy policy = EndpointPolicy::kRoundRobin;
  // Pin this process to endpoint (rank % endpoints) using OMPI_COMM_WORLD_RANK, RANK or SLURM_PROCID.
  bool pin_by_rank = false;
  uint32_t endpoint_cooldown_ms = 5000;     // a failing endpoint is avoided this long, then tried again
  uint64_t multipart_part_size = 8 << 20;   // parts of multipart uploads (S3 minimum 5 MiB except the last)
  unsigned multipart_parallel = 8;          // parts in flight
  uint64_t multipart_threshold = 16 << 20;  // Client::upload uses one PUT below this size
  EnvironmentLookup environment;            // default: the process environment (tests pass a map)
};

}  // namespace ringfetch::s3
