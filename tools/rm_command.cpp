// `ringfetch rm S3_URL...`: deletes objects. Every URL is checked before anything is deleted, so a typo in the
// third URL does not leave the first two gone and the rest in place. Keys are grouped by bucket: one key goes as
// DeleteObject, several as DeleteObjects batches (S3Client::remove_many). As in S3, deleting a key that does not
// exist succeeds.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kRmHelp[] =
    "usage: ringfetch rm S3_URL [S3_URL...] [connection options]\n"
    "\n"
    "Deletes the objects named by the URLs (s3://bucket/key) and prints 'delete: URL' for each. Several keys in\n"
    "one bucket are deleted in batches. Deleting a key that does not exist succeeds, as in S3.\n"
    "\n";

struct BucketKeys {
  std::string bucket;
  std::vector<std::string> keys;
};

// Keys grouped by bucket, buckets in order of first mention. Throws Error for a URL that names no object.
std::vector<BucketKeys> group_by_bucket(const std::vector<std::string_view>& urls) {
  std::vector<BucketKeys> groups;
  for (std::string_view url : urls) {
    S3Location location = parse_s3_url(url);
    if (location.key.empty()) {
      throw Error(ErrorKind::kInvalidArgument, "bad object URL '" + std::string(url) + "': no key after the bucket");
    }
    auto group =
        std::find_if(groups.begin(), groups.end(), [&](const BucketKeys& g) { return g.bucket == location.bucket; });
    if (group == groups.end()) group = groups.insert(groups.end(), BucketKeys{location.bucket, {}});
    group->keys.push_back(std::move(location.key));
  }
  return groups;
}

void remove_group(s3::S3Client& client, const BucketKeys& group) {
  if (group.keys.size() == 1) {
    client.remove(group.bucket, group.keys.front());
  } else {
    client.remove_many(group.bucket, group.keys);
  }
  for (const std::string& key : group.keys) {
    std::printf("delete: %s\n", format_s3_url(S3Location{group.bucket, key}).c_str());
  }
}

}  // namespace

int run_rm(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kRmHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch rm", args, with_connection_options({}));
  if (line.positional().empty()) line.fail("missing S3_URL");
  const std::vector<BucketKeys> groups = group_by_bucket(line.positional());
  const StoreOptions options = connection_options(line);
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.s3, options.http);
  for (const BucketKeys& group : groups) remove_group(client, group);
  return 0;
}

}  // namespace ringfetch::cli
