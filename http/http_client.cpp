// HttpClient implementation: endpoint creation and the per-worker connection pools. Pools are touched only on their
// worker's thread; the wait queue is intrusive (Attempt::next_queued) and the idle list is reserved up front, so
// taking and returning connections allocates nothing.
#include "http/http_client.hpp"

namespace ringfetch::http {

struct HttpClient::Pool {
  std::vector<std::unique_ptr<Connection>> idle;
  unsigned open = 0;  // idle + lent out
  Attempt* queue_head = nullptr;
  Attempt* queue_tail = nullptr;

  void enqueue(Attempt* attempt) {
    attempt->next_queued = nullptr;
    if (queue_tail != nullptr) queue_tail->next_queued = attempt;
    else queue_head = attempt;
    queue_tail = attempt;
  }
  Attempt* dequeue() {
    Attempt* first = queue_head;
    if (first == nullptr) return nullptr;
    queue_head = first->next_queued;
    if (queue_head == nullptr) queue_tail = nullptr;
    first->next_queued = nullptr;
    return first;
  }
  void remove(Attempt* attempt) {
    Attempt* previous = nullptr;
    for (Attempt* a = queue_head; a != nullptr; previous = a, a = a->next_queued) {
      if (a != attempt) continue;
      (previous != nullptr ? previous->next_queued : queue_head) = a->next_queued;
      if (queue_tail == a) queue_tail = previous;
      a->next_queued = nullptr;
      return;
    }
  }
};

Endpoint endpoint_for(const std::string& scheme, const std::string& host, uint16_t port, bool ipv6_literal,
                      std::string host_header) {
  Endpoint endpoint;
  endpoint.host = host;
  endpoint.port = port;
  endpoint.tls = scheme == "https";
  endpoint.ip_literal = ipv6_literal || host.find_first_not_of("0123456789.") == std::string::npos;
  endpoint.host_header = std::move(host_header);
  return endpoint;
}

Status HttpClient::create(Engine::Impl& engine, Endpoint endpoint, HttpOptions options,
                          std::shared_ptr<TlsContext> tls, std::unique_ptr<HttpClient>* out) {
  std::shared_ptr<AddressBook> addresses;
  if (Status status = AddressBook::create(endpoint.host, endpoint.port, &addresses); !status.ok()) return status;
  out->reset(new HttpClient(engine, std::move(endpoint), std::move(options), std::move(tls), std::move(addresses)));
  return {};
}

HttpClient::HttpClient(Engine::Impl& engine, Endpoint endpoint, HttpOptions options, std::shared_ptr<TlsContext> tls,
                       std::shared_ptr<AddressBook> addresses)
    : engine_(engine), endpoint_(std::move(endpoint)), options_(std::move(options)), tls_(std::move(tls)),
      addresses_(std::move(addresses)) {
  const auto workers = static_cast<unsigned>(engine_.workers.size());
  per_worker_ = std::max(1u, (std::max(1u, options_.connections) + workers - 1) / workers);
  for (unsigned i = 0; i < workers; ++i) {
    auto pool = std::make_shared<Pool>();
    pool->idle.reserve(per_worker_);
    pools_.push_back(std::move(pool));
  }
  if (options_.max_attempts == 0) options_.max_attempts = 1;
}

HttpClient::~HttpClient() {
  // Idle connections belong to their workers' threads: each pool is handed to its worker to close, without
  // waiting. (This may run on another worker, which must never block on a peer that is itself shutting down.)
  for (auto& worker : engine_.workers) {
    std::shared_ptr<Pool> pool = std::move(pools_[worker->id()]);
    if (worker->on_worker_thread()) pool->idle.clear();
    else worker->post([pool] { pool->idle.clear(); });
  }
}

std::string HttpClient::url_for(const std::string& path) const {
  return std::string(endpoint_.tls ? "https://" : "http://") + endpoint_.host_header + path;
}

void HttpClient::acquire(engine::Worker& worker, Attempt* attempt) {
  Pool& pool = *pools_[worker.id()];
  if (!pool.idle.empty()) {
    std::unique_ptr<Connection> connection = std::move(pool.idle.back());
    pool.idle.pop_back();
    attempt->grant(std::move(connection));
  } else if (pool.open < per_worker_) {
    ++pool.open;
    attempt->grant(std::make_unique<Connection>(worker, endpoint_, tls_, engine_.counters));
  } else {
    pool.enqueue(attempt);
  }
}

void HttpClient::release(engine::Worker& worker, std::unique_ptr<Connection> connection, bool keep) {
  Pool& pool = *pools_[worker.id()];
  if (!keep || connection->in_flight()) {
    connection.reset();
    --pool.open;
    if (Attempt* next = pool.dequeue()) acquire(worker, next);
    return;
  }
  if (Attempt* next = pool.dequeue()) {
    next->grant(std::move(connection));
    return;
  }
  pool.idle.push_back(std::move(connection));
}

void HttpClient::drop_idle(engine::Worker& worker) {
  Pool& pool = *pools_[worker.id()];
  pool.open -= static_cast<unsigned>(pool.idle.size());
  pool.idle.clear();
  while (pool.open < per_worker_) {
    Attempt* next = pool.dequeue();
    if (next == nullptr) break;
    acquire(worker, next);
  }
}

void HttpClient::withdraw(engine::Worker& worker, Attempt* attempt) { pools_[worker.id()]->remove(attempt); }

}  // namespace ringfetch::http
