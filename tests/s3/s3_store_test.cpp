// S3 against a real S3 server (s3rver) on loopback: PUT/HEAD/ranged loads byte for byte, multipart upload of a
// 100+ MiB object, listing with pages, deletes, S3 error codes, and an overwrite in the middle of a read.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
#include "servers/s3rver_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::pattern_slice;

struct S3TestEnv {
  testing::S3rverServer server;
  testing::TempDir home{"ringfetch-s3-home-"};

  s3::S3Options options(const std::string& access_key = "S3RVER") const {
    s3::S3Options o;
    o.endpoints = {server.endpoint()};
    o.environment = s3::environment_from({{"AWS_ACCESS_KEY_ID", access_key},
                                          {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
                                          {"AWS_REGION", "us-east-1"},
                                          {"HOME", home.path().string()}});
    return o;
  }
};

S3TestEnv& env() {
  static S3TestEnv instance;
  return instance;
}

// A bucket of its own per test, emptied and removed at the end.
class S3Store : public ::testing::Test {
 protected:
  void SetUp() override {
    bucket_ = "rf-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : bucket_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bucket_ = bucket_.substr(0, 60);
    client_.create_bucket(bucket_);
  }
  void TearDown() override {
    std::vector<std::string> keys;
    for (const auto& info : client_.list(bucket_, "")) keys.push_back(info.key);
    for (const auto& key : keys) client_.remove(bucket_, key);
    client_.delete_bucket(bucket_);
  }

  std::vector<std::byte> put_pattern(const std::string& key, uint64_t size, uint64_t seed) {
    std::vector<std::byte> data = testing::make_pattern(size, seed);
    client_.put(bucket_, key, data);
    return data;
  }

  StoreOptions store_options() const {
    StoreOptions o;
    o.s3 = env().options();
    o.http.connections = 4;
    return o;
  }

  Engine engine_{{.threads = 2, .arena_bytes = 160ull << 20}};
  s3::S3Client client_ = s3::S3Client::open(engine_, env().options());
  std::string bucket_;
};

TEST_F(S3Store, PutHeadAndRandomRangedLoads) {
  const uint64_t size = 24 << 20;
  auto data = put_pattern("ckpt/shard-0", size, 31);
  s3::ObjectInfo info = client_.head(bucket_, "ckpt/shard-0");
  EXPECT_EQ(info.size, size);
  EXPECT_FALSE(info.etag.empty());

  StoreOptions o = store_options();
  o.part_size = 1 << 20;
  Store store = Store::open("s3://" + bucket_ + "/ckpt", engine_, o);
  EXPECT_EQ(store.size("shard-0"), size);
  std::mt19937_64 rng(5);
  for (int round = 0; round < 3; ++round) {
    Plan plan;
    uint64_t pos = 0;
    while (true) {
      pos += rng() % (2 << 20);
      const uint64_t len = 1 + rng() % (3 << 20);
      if (pos + len > size) break;
      plan.add("shard-0", pos, len);
      pos += len;
    }
    engine_.reset_stats();
    size_t n = 0;
    for (const ItemView& item : store.fetch(plan)) {
      ASSERT_EQ(0, std::memcmp(item.bytes().data(), data.data() + item.offset(), item.size()));
      ++n;
    }
    EXPECT_EQ(n, plan.size());
    EXPECT_EQ(engine_.stats().errors, 0u);
  }
}

TEST_F(S3Store, MultipartUploadOfAHundredMiBReadsBackIdentically) {
  const uint64_t size = (100ull << 20) + 12345;
  std::vector<std::byte> data = testing::make_pattern(size, 77);
  s3::S3Options o = env().options();
  o.multipart_part_size = 8 << 20;
  o.multipart_parallel = 6;
  s3::S3Client client = s3::S3Client::open(engine_, o);
  s3::UploadStats stats = client.upload(bucket_, "big", data);
  EXPECT_EQ(stats.parts, 13u);
  EXPECT_EQ(client.head(bucket_, "big").size, size);
  StoreOptions so = store_options();
  so.part_size = 8 << 20;
  Store store = Store::open("s3://" + bucket_, engine_, so);
  Plan plan;
  plan.add("big", 0, size);
  for (const ItemView& item : store.fetch(plan)) {
    ASSERT_EQ(item.size(), size);
    EXPECT_EQ(0, std::memcmp(item.bytes().data(), data.data(), size));
  }
}

TEST_F(S3Store, ListingFollowsContinuationTokens) {
  std::vector<std::byte> one(10, std::byte{1});
  for (int i = 0; i < 25; ++i) client_.put(bucket_, "p/key-" + std::to_string(100 + i), one);
  client_.put(bucket_, "other", one);
  s3::ListPage first = client_.list_page(bucket_, "p/", {}, 10);
  EXPECT_EQ(first.objects.size(), 10u);
  EXPECT_TRUE(first.truncated);
  EXPECT_FALSE(first.next_continuation_token.empty());
  s3::ListPage second = client_.list_page(bucket_, "p/", first.next_continuation_token, 10);
  EXPECT_EQ(second.objects.size(), 10u);
  EXPECT_NE(second.objects.front().key, first.objects.front().key);
  auto all = client_.list(bucket_, "p/");
  ASSERT_EQ(all.size(), 25u);
  EXPECT_EQ(all.front().key, "p/key-100");
  EXPECT_EQ(all.front().size, 10u);
  s3::ListPage dirs = client_.list_page(bucket_, "", {}, 1000, "/");
  ASSERT_EQ(dirs.common_prefixes.size(), 1u);
  EXPECT_EQ(dirs.common_prefixes.front(), "p/");
}

TEST_F(S3Store, DeletesAndMissingKeysGiveNoSuchKey) {
  std::vector<std::byte> one(10, std::byte{2});
  client_.put(bucket_, "a", one);
  client_.put(bucket_, "b", one);
  client_.put(bucket_, "c", one);
  client_.remove(bucket_, "a");
  client_.remove_many(bucket_, {"b", "c"});
  EXPECT_TRUE(client_.list(bucket_, "").empty());
  try {
    client_.head(bucket_, "a");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kS3);
    EXPECT_EQ(e.s3_code(), "NoSuchKey");
    EXPECT_EQ(e.http_status(), 404);
  }
  Store store = Store::open("s3://" + bucket_, engine_, store_options());
  Plan plan;
  plan.add("a", 0, 5);
  try {
    store.fetch(plan).wait();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.s3_code(), "NoSuchKey") << e.what();
    EXPECT_NE(std::string(e.what()).find("s3://" + bucket_ + "/a"), std::string::npos) << e.what();
  }
}

TEST_F(S3Store, HeadOfAMissingBucketSaysNoSuchBucketNotNoSuchKey) {
  // HEAD's answer has no body; the client asks for the first bytes to learn S3's own code.
  try {
    client_.head(bucket_ + "-missing", "key");
    FAIL() << "HEAD in a missing bucket succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kS3);
    EXPECT_EQ(e.s3_code(), "NoSuchBucket") << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  try {
    Store::open("s3://" + bucket_ + "-missing", engine_, store_options()).size("key");
    FAIL() << "size of an object in a missing bucket succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.s3_code(), "NoSuchBucket") << e.what();
  }
}

TEST_F(S3Store, UnknownAccessKeyIsInvalidAccessKeyId) {
  s3::S3Client stranger = s3::S3Client::open(engine_, env().options("NOT-A-KEY"));
  try {
    stranger.list(bucket_, "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kS3);
    EXPECT_EQ(e.s3_code(), "InvalidAccessKeyId") << e.what();
    EXPECT_EQ(std::string(e.what()).find("S3RVER"), std::string::npos) << "secret leaked: " << e.what();
  }
}

TEST_F(S3Store, OverwriteDuringAMultiRequestReadIsAnError) {
  put_pattern("obj", 8 << 20, 1);
  // An arena of two items: the third request waits until the caller releases the first view, which lets the
  // test overwrite the object exactly between requests.
  Engine small({.threads = 1, .arena_bytes = 2 << 20});
  StoreOptions o = store_options();
  o.http.connections = 1;
  o.part_size = 1 << 20;
  o.max_gap = 0;
  Store store = Store::open("s3://" + bucket_, small, o);
  Plan plan;
  for (int i = 0; i < 8; ++i) plan.add("obj", uint64_t(i) << 20, 1 << 20);
  FetchBatch batch = store.fetch(plan);
  {
    std::optional<ItemView> first = batch.next();
    ASSERT_TRUE(first.has_value());
    put_pattern("obj", 8 << 20, 2);  // a new ETag
  }
  bool failed = false;
  try {
    while (batch.next()) {
    }
  } catch (const Error& e) {
    failed = true;
    EXPECT_EQ(e.kind(), ErrorKind::kIntegrity);
    EXPECT_NE(std::string(e.what()).find("changed during the read"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(failed) << "mixed data from two versions was delivered";
}

}  // namespace
}  // namespace ringfetch
