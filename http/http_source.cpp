// HttpSource implementation: URL -> endpoint (resolved here, on the opening thread) and TLS context; sizes from the
// size probe, reads as ranged GETs.
#include "http/http_source.hpp"

#include "http/ranged_get.hpp"

namespace ringfetch::http {

Status HttpSource::create(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                          std::unique_ptr<engine::Source>* out) {
  std::unique_ptr<HttpSource> source(new HttpSource(root, options));
  Endpoint endpoint = endpoint_for(root.scheme, root.host, root.port, root.ipv6_literal, root.host_header());
  std::shared_ptr<TlsContext> tls;
  if (endpoint.tls) {
    TlsOptions tls_options;
    tls_options.verify = options.http.verify_tls;
    tls_options.ca_file = options.http.ca_file;
    if (Status created = TlsContext::create(tls_options, &tls); !created.ok()) return created;
  }
  if (Status created = HttpClient::create(engine, std::move(endpoint), options.http, std::move(tls), &source->client_);
      !created.ok()) {
    return created;
  }
  *out = std::move(source);
  return {};
}

engine::SourceDefaults HttpSource::defaults() const {
  engine::SourceDefaults d;
  d.max_gap = kDefaultMaxGap;
  d.max_in_flight = std::max(1u, options_.http.connections);
  return d;
}

Status HttpSource::open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) {
  auto object = std::make_shared<RemoteObject>();
  object->key = key;
  object->path = engine::join_path(root_.path.empty() ? "/" : root_.path, encode_path(key));
  if (object->path.empty() || object->path[0] != '/') object->path.insert(0, "/");
  object->display = client_->url_for(object->path);
  if (need_size) {
    if (Status status = probe_size(*client_, *object); !status.ok()) return status;
  }
  *out = std::move(object);
  return {};
}

void HttpSource::start_read(engine::Worker& worker, engine::ReadTask* task) { RangedGet::start(worker, *client_, task); }

void HttpSource::cancel_read(engine::Worker&, engine::ReadTask* task) { RangedGet::cancel(task); }

}  // namespace ringfetch::http
