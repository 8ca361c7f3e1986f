// The URLs the commands take apart. An object URL is a store root plus a key, split at the last '/'
// (file:///tmp/x/blob -> root file:///tmp/x, key blob; s3://bucket/prefix/key -> root s3://bucket/prefix, key
// key), which is what the Store-based commands (cat, get) need. The S3-only commands (ls, put, rm) call
// S3Client, which wants the bucket and the whole key instead (s3://bucket/a/b -> bucket, "a/b").
#pragma once

#include <string>
#include <string_view>

namespace ringfetch::cli {

struct ObjectUrl {
  std::string root;
  std::string key;
};

// Splits at the last '/'; when that '/' starts the path ("file:///blob"), the root keeps it. Throws
// Error(kInvalidArgument) naming the URL when there is no scheme or no key, or when it ends with '/'.
ObjectUrl split_object_url(std::string_view url);

struct S3Location {
  std::string bucket;
  std::string key;  // may be empty (a whole bucket) or end with '/' (a prefix)
};

// s3://bucket[/key]. Throws Error(kInvalidArgument) naming the URL when it is not s3:// or has no bucket.
S3Location parse_s3_url(std::string_view url);

// "s3://bucket/key".
std::string format_s3_url(const S3Location& location);

}  // namespace ringfetch::cli
