// `ringfetch mb s3://BUCKET`: creates a bucket (S3Client::create_bucket; in a region other than us-east-1 the
// request names the region as its LocationConstraint), and prints "make_bucket: BUCKET" as awscli does.
#include <cstdio>
#include <string>

#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kMbHelp[] =
    "usage: ringfetch mb s3://BUCKET [connection options]\n"
    "\n"
    "Creates the bucket, in the region of --region (or AWS_REGION, the profile, us-east-1).\n"
    "\n";

}  // namespace

int run_mb(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kMbHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch mb", args, with_connection_options({}));
  line.expect_positional({"S3_URL"});
  const S3Location location = parse_s3_url(line.positional()[0]);
  if (!location.key.empty()) {
    throw Error(ErrorKind::kInvalidArgument, "bad object URL '" + std::string(line.positional()[0]) +
                                                 "': mb takes a bucket (s3://BUCKET), not a key");
  }
  const StoreOptions options = connection_options(line);
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.s3, options.http);
  client.create_bucket(location.bucket);
  std::printf("make_bucket: %s\n", location.bucket.c_str());
  return 0;
}

}  // namespace ringfetch::cli
