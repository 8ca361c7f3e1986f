// The ringfetch contender (see ringfetch_client.hpp). The Plan is built before the clock starts (it is what the
// caller already has; the transport contenders' request lists are prepared the same way); opening the Store,
// fetching, consuming, dropping the views and closing the Store are timed.
#include "ringfetch_client.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "measure.hpp"

namespace ringfetch::bench {
namespace {

StoreOptions store_options(const RingfetchJob& job) {
  StoreOptions options;
  options.part_size = job.workload->part_size;
  if (!job.adaptive_gap) options.max_gap = job.max_gap.value_or(job.workload->max_gap);
  options.max_in_flight = job.connections;
  options.http.connections = job.connections;
  options.http.ca_file = job.server.ca_file;
  options.http.hedge = job.hedge;
  return options;
}

Plan make_plan(const Workload& w, std::span<std::byte> destination) {
  Plan plan;
  for (const ByteSpan& item : w.items) {
    if (destination.empty()) plan.add(w.object.key, item.offset, item.length);
    else plan.add(w.object.key, item.offset, item.length, destination.subspan(item.offset, item.length));
  }
  return plan;
}

// Per-run state shared with the engine thread's callbacks.
struct Delivery {
  explicit Delivery(size_t n) : views(n), done_ns(n), completion_ns(n) {}
  std::vector<ItemView> views;
  std::vector<uint64_t> done_ns;        // per plan item
  std::vector<uint64_t> completion_ns;  // k-th completion, in completion order
  std::atomic<size_t> completions{0};
  std::atomic<size_t> returned{0};      // callbacks that have finished running

  // `item`: the read's position in the workload (a single-item fetch delivers every view with index 0).
  void on_item(size_t item, const ItemView& view) {
    const uint64_t t = now_ns();
    completion_ns[completions.fetch_add(1, std::memory_order_relaxed)] = t;
    done_ns[item] = t;
    views[item] = view;
    returned.fetch_add(1, std::memory_order_release);
  }
  // Every callback has returned (and its writes are visible here). FetchBatch::wait() promises this too; engine
  // versions before cdb98c9 returned once the last item was marked finished, before its callback ran.
  void wait_for_callbacks(size_t n) const {
    while (returned.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }
};

void consume_views(Store& store, const Plan& plan, Delivery* d) {
  FetchBatch batch = store.fetch(plan);
  for (const ItemView& view : batch) d->views[view.index()] = view;
}

// One plan, items delivered by callback. The scheduler keeps `connections` requests in flight and dispatches in
// plan order, one request per item here (nothing coalesces), right before running the callbacks of the request
// that freed the slot: item i (i >= N) is therefore issued at the (i-N)-th completion; items 0..N-1 at submit.
void consume_callbacks(Store& store, const Plan& plan, unsigned connections, Delivery* d,
                       std::vector<uint64_t>* issue_ns) {
  const uint64_t submit_ns = now_ns();
  FetchBatch batch = store.fetch(plan, [d](const ItemView& view) { d->on_item(view.index(), view); });
  batch.wait();
  d->wait_for_callbacks(plan.size());
  issue_ns->resize(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) (*issue_ns)[i] = i < connections ? submit_ns : d->completion_ns[i - connections];
}

// One single-item fetch per read, `connections` outstanding; a read is issued as soon as one finishes.
void consume_per_request(Store& store, const Workload& w, unsigned connections, Delivery* d,
                         std::vector<uint64_t>* issue_ns) {
  const size_t n = w.items.size();
  issue_ns->assign(n, 0);
  std::vector<FetchBatch> batches(n);
  std::mutex mutex;
  std::condition_variable finished_cv;
  std::vector<size_t> finished;
  size_t issued = 0;
  size_t done = 0;
  while (done < n) {
    for (; issued < n && issued - done < connections; ++issued) {
      Plan plan;
      plan.add(w.object.key, w.items[issued].offset, w.items[issued].length);
      (*issue_ns)[issued] = now_ns();
      batches[issued] = store.fetch(plan, [d, &mutex, &finished, &finished_cv, i = issued](const ItemView& view) {
        d->on_item(i, view);
        std::lock_guard lock(mutex);
        finished.push_back(i);
        finished_cv.notify_one();
      });
    }
    std::vector<size_t> ready;
    {
      std::unique_lock lock(mutex);
      finished_cv.wait(lock, [&] { return !finished.empty(); });
      ready.swap(finished);
    }
    for (size_t i : ready) batches[i] = FetchBatch();
    done += ready.size();
  }
  d->wait_for_callbacks(n);
}

std::string check_views(const std::vector<ItemView>& views, const Workload& w) {
  for (size_t i = 0; i < views.size(); ++i) {
    const ItemView& view = views[i];
    if (!view.ok()) return "ringfetch: " + view.status().message();
    if (view.offset() != w.items[i].offset || view.size() != w.items[i].length) {
      return "ringfetch: item " + std::to_string(i) + " missing or misplaced";
    }
    if (!sample_matches(view.bytes(), view.offset(), w.object.seed)) {
      return "ringfetch: wrong bytes in item " + std::to_string(i);
    }
    // The arena is reused by the next run; clear the samples so stale bytes can never pass for fresh ones.
    auto bytes = view.bytes();
    poison_samples(std::span(const_cast<std::byte*>(bytes.data()), bytes.size()));
  }
  return {};
}

void copy_stats(const Stats& s, RunResult* out) {
  out->requests = s.requests;
  out->bytes_useful = s.bytes_requested;
  out->bytes_wire = s.bytes_body;
  out->bytes_copied = s.bytes_copied_user;
  out->hedges_sent = s.hedges_sent;
  out->hedges_won = s.hedges_won;
  out->hedge_bytes_wasted = s.hedge_bytes_wasted;
  out->max_gap = s.max_gap;
  if (s.retries != 0) out->detail = "retries=" + std::to_string(s.retries);
  if (s.errors != 0 && out->error.empty()) out->error = "ringfetch: " + std::to_string(s.errors) + " item errors";
}

}  // namespace

RingfetchContender::RingfetchContender(unsigned threads, uint64_t arena_bytes) {
  EngineOptions options;
  options.threads = threads;
  options.arena_bytes = arena_bytes;
  engine_ = std::make_unique<Engine>(options);
}

RingfetchContender::~RingfetchContender() = default;

Store* RingfetchContender::kept_store(const RingfetchJob& job, const StoreOptions& options, const Plan& plan) {
  if (job.mode != RingfetchMode::kViews) throw std::invalid_argument("a kept Store is for kViews runs only");
  std::unique_ptr<Store>& slot = kept_stores_[job.keep_store];
  if (slot != nullptr) return slot.get();
  auto store = std::make_unique<Store>(Store::open(job.server.root_url(job.protocol), *engine_, options));
  Delivery warm(plan.size());
  consume_views(*store, plan, &warm);  // untimed: connections, and the first measurements of an adaptive gap
  const std::string error = check_views(warm.views, *job.workload);
  if (!error.empty()) throw std::runtime_error("warm-up fetch failed (" + error + ")");
  slot = std::move(store);
  return slot.get();
}

std::string RingfetchContender::describe() const {
  const Stats s = engine_->stats();
  std::string text = s.backend + (s.buffers_registered ? ", registered buffers" : ", plain reads");
  if (!s.fallback_reason.empty()) text += " (" + s.fallback_reason + ")";
  return text;
}

RunResult RingfetchContender::run(const RingfetchJob& job) {
  const Workload& w = *job.workload;
  const Plan plan = make_plan(w, job.destination);
  const StoreOptions options = store_options(job);
  Delivery delivery(plan.size());
  std::vector<uint64_t> issue_ns;
  RunResult result;
  Store* kept = nullptr;
  if (!job.keep_store.empty()) {
    try {
      kept = kept_store(job, options, plan);
    } catch (const std::exception& e) {
      result.error = std::string("ringfetch: ") + e.what();
      return result;
    }
  }
  engine_->reset_stats();
  Stopwatch clock;
  clock.start();
  try {
    std::optional<Store> fresh;
    if (kept == nullptr) fresh.emplace(Store::open(job.server.root_url(job.protocol), *engine_, options));
    Store& store = kept != nullptr ? *kept : *fresh;
    // Registering pins the pages, so fresh memory is faulted in here rather than by the reads.
    MemoryRegistration registration;
    if (!job.destination.empty()) registration = engine_->register_memory(job.destination);
    if (!job.destination.empty() && !registration.registered()) result.detail = "destination not registered";
    switch (job.mode) {
      case RingfetchMode::kViews: consume_views(store, plan, &delivery); break;
      case RingfetchMode::kCallback: consume_callbacks(store, plan, job.connections, &delivery, &issue_ns); break;
      case RingfetchMode::kPerRequest: consume_per_request(store, w, job.connections, &delivery, &issue_ns); break;
    }
    clock.pause();
    result.error = check_views(delivery.views, w);
    clock.resume();
    delivery.views.clear();
  } catch (const std::exception& e) {
    result.error = std::string("ringfetch: ") + e.what();
  }
  clock.stop();
  clock.report(&result);
  copy_stats(engine_->stats(), &result);
  if (!issue_ns.empty()) {
    result.latency_ns.resize(issue_ns.size());
    for (size_t i = 0; i < issue_ns.size(); ++i) result.latency_ns[i] = delivery.done_ns[i] - issue_ns[i];
  }
  result.ok = result.error.empty();
  return result;
}

}  // namespace ringfetch::bench
