// No deadlocks by construction: blocking calls made on an engine thread (from a fetch callback) fail at once and say
// why; a batch dropped from its own callback stops delivery without waiting; an engine destroyed with fetches in
// flight ends them with kCancelled and returns.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringfetch/ringfetch.hpp"
#include "servers/nginx_server.hpp"
#include "servers/temp_dir.hpp"
#include "servers/watchdog.hpp"

namespace ringfetch {
namespace {

using testing::NginxServer;
using testing::bounded;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kMiB = 1 << 20;

class BlockingCallsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_pattern_file(dir_->path() / "blob.bin", 16 * kMiB, 5);
    nginx_ = new NginxServer(dir_->path());
  }
  static void TearDownTestSuite() {
    delete nginx_;
    delete dir_;
  }
  static std::string http_root() { return "http://127.0.0.1:" + std::to_string(nginx_->http_port()); }
  static std::string file_root() { return "file://" + dir_->path().string(); }
  static inline TempDir* dir_ = nullptr;
  static inline NginxServer* nginx_ = nullptr;
};

TEST_F(BlockingCallsTest, SynchronousCallsInsideACallbackFailAtOnceAndSaySo) {
  for (const std::string& root : {http_root(), file_root()}) {
    Engine engine({.threads = 1});
    Store store = Store::open(root, engine);
    Plan plan;
    plan.add("blob.bin", 0, 4096);
    std::vector<std::string> messages;
    std::mutex mutex;
    auto expect_refused = [&](const char* what, const std::function<void()>& call) {
      try {
        call();
        std::lock_guard lock(mutex);
        messages.push_back(std::string(what) + ": no error");
      } catch (const Error& e) {
        std::lock_guard lock(mutex);
        messages.push_back(e.kind() == ErrorKind::kUnsupported ? std::string(e.what()) : std::string(what) + ": " + e.what());
      }
    };
    bounded(std::chrono::seconds(60), [&] {
      FetchBatch batch = store.fetch(plan, [&](const ItemView&) {
        expect_refused("size", [&] { store.size("blob.bin"); });
        expect_refused("fetch", [&] { store.fetch(plan); });
        expect_refused("reader", [&] { store.reader("blob.bin"); });
        std::vector<std::byte> memory(64);
        expect_refused("register_memory", [&] { engine.register_memory(memory); });
      });
      batch.wait();
    });
    ASSERT_EQ(messages.size(), 4u) << root;
    for (const std::string& message : messages) {
      EXPECT_NE(message.find("engine thread"), std::string::npos) << root << ": " << message;
      EXPECT_NE(message.find("from a fetch callback"), std::string::npos) << message;
    }
    EXPECT_NE(messages[0].find("Store::size"), std::string::npos) << messages[0];
    // Outside the callback the same calls work.
    EXPECT_EQ(store.size("blob.bin"), 16 * kMiB);
  }
}

TEST_F(BlockingCallsTest, WaitAndNextFromACallbackFailInsteadOfDeadlocking) {
  Engine engine({.threads = 1});
  Store store = Store::open(file_root(), engine);
  Plan plan;
  for (int i = 0; i < 4; ++i) plan.add("blob.bin", uint64_t(i) * kMiB, 4096);
  std::shared_ptr<FetchBatch> other = std::make_shared<FetchBatch>(store.fetch(plan));
  std::atomic<int> refused{0};
  bounded(std::chrono::seconds(60), [&] {
    FetchBatch batch = store.fetch(plan, [&](const ItemView&) {
      try {
        other->next();
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kUnsupported) ++refused;
      }
    });
    batch.wait();
  });
  EXPECT_EQ(refused.load(), 4);
}

TEST_F(BlockingCallsTest, DroppingABatchFromItsOwnCallbackStopsDeliveryAndReturns) {
  for (const std::string& root : {http_root(), file_root()}) {
    Engine engine({.threads = 1});
    Store store = Store::open(root, engine);
    Plan plan;
    for (int i = 0; i < 64; ++i) plan.add("blob.bin", uint64_t(i) * 256 * 1024, 1024);
    auto holder = std::make_shared<std::unique_ptr<FetchBatch>>();
    std::mutex holder_mutex;  // the first callback may run before fetch() has returned and the batch is stored
    std::atomic<int> delivered{0};
    std::promise<void> dropped;
    bounded(std::chrono::seconds(60), [&] {
      {
        std::lock_guard lock(holder_mutex);
        *holder = std::make_unique<FetchBatch>(store.fetch(plan, [&, holder](const ItemView&) {
          if (++delivered == 1) {
            std::lock_guard held(holder_mutex);
            holder->reset();  // the batch, destroyed on an engine thread, from its own callback
            dropped.set_value();
          }
        }));
      }
      dropped.get_future().wait();
    });
    // The engine stays usable and no further callback of the dropped batch runs once it is gone.
    const int after_drop = delivered.load();
    Plan small;
    small.add("blob.bin", 0, 10);
    bounded(std::chrono::seconds(60), [&] { store.fetch(small).wait(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(delivered.load(), after_drop) << root;
  }
}

TEST_F(BlockingCallsTest, EngineDestroyedMidFetchEndsItWithCancelled) {
  for (int round = 0; round < 30; ++round) {
    const std::string root = round % 2 == 0 ? http_root() : file_root();
    auto engine = std::make_unique<Engine>(EngineOptions{.threads = 1 + unsigned(round % 3), .arena_bytes = 4 * kMiB});
    Store store = Store::open(root, *engine);
    Plan plan;
    for (int i = 0; i < 16; ++i) plan.add("blob.bin", uint64_t(i) * kMiB, kMiB);
    FetchBatch batch = store.fetch(plan);
    std::vector<ItemView> kept;
    size_t taken_before = 0;
    if (round % 3 == 0) {
      if (auto first = batch.next()) {
        kept.push_back(*first);
        taken_before = 1;
      }
    }
    bounded(std::chrono::seconds(60), [&] { engine.reset(); });
    // Whatever was not delivered ends with kCancelled; nothing hangs; views still read.
    bounded(std::chrono::seconds(60), [&] {
      size_t ok = 0, cancelled = 0;
      for (;;) {
        try {
          std::optional<ItemView> view = batch.next();
          if (!view) break;
          ++ok;
          kept.push_back(*view);
        } catch (const Error& e) {
          EXPECT_EQ(e.kind(), ErrorKind::kCancelled) << e.what();
          ++cancelled;
        }
      }
      EXPECT_EQ(taken_before + ok + cancelled, 16u) << "round " << round;
    });
    for (const ItemView& view : kept) EXPECT_EQ(view.size(), kMiB);
    // A call on a store whose engine is gone says so.
    Plan again;
    again.add("blob.bin", 0, 10);
    try {
      store.fetch(again);
      ADD_FAILURE() << "fetch on a store whose engine shut down";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCancelled) << e.what();
    }
  }
}

}  // namespace
}  // namespace ringfetch
