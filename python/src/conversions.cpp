// Conversions of options and counters (see conversions.hpp). Fields that the C++ API is expected to gain or to
// make optional are set through small templates that compile against either shape of the struct.
#include "conversions.hpp"

#include <limits>
#include <string_view>
#include <utility>
#include <vector>

namespace ringfetch::python {
namespace {

[[noreturn]] void type_error(const std::string& message) { throw py::type_error(message); }
[[noreturn]] void value_error(const std::string& message) { throw py::value_error(message); }

std::string type_name(py::handle value) { return py::str(py::type::handle_of(value).attr("__name__")); }

bool to_bool(py::handle value, const char* what) {
  if (!PyBool_Check(value.ptr())) type_error(std::string(what) + " must be a bool, not " + type_name(value));
  return value.ptr() == Py_True;
}

std::string to_string(py::handle value, const char* what) {
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  // os.PathLike (ca_bundle=pathlib.Path(...))
  if (py::hasattr(value, "__fspath__")) return py::str(value.attr("__fspath__")());
  type_error(std::string(what) + " must be a str, not " + type_name(value));
}

uint32_t to_milliseconds(py::handle value, const char* what) {
  uint64_t ms = to_u64(value, what);
  if (ms > std::numeric_limits<uint32_t>::max()) value_error(std::string(what) + " is too large");
  return static_cast<uint32_t>(ms);
}


Backend to_backend(py::handle value) {
  std::string name = to_string(value, "backend");
  if (name == "auto") return Backend::kAuto;
  if (name == "io_uring") return Backend::kIoUring;
  if (name == "epoll") return Backend::kEpoll;
  value_error("backend must be 'auto', 'io_uring' or 'epoll', not '" + name + "'");
}

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kAuto: return "auto";
    case Backend::kIoUring: return "io_uring";
    case Backend::kEpoll: return "epoll";
  }
  return "auto";
}

s3::AddressingStyle to_addressing_style(py::handle value) {
  std::string name = to_string(value, "addressing_style");
  if (name == "auto") return s3::AddressingStyle::kAuto;
  if (name == "path") return s3::AddressingStyle::kPath;
  if (name == "virtual") return s3::AddressingStyle::kVirtualHost;
  value_error("addressing_style must be 'auto', 'path' or 'virtual', not '" + name + "'");
}

s3::EndpointPolicy to_endpoint_policy(py::handle value) {
  std::string name = to_string(value, "endpoint_policy");
  if (name == "round_robin") return s3::EndpointPolicy::kRoundRobin;
  if (name == "random") return s3::EndpointPolicy::kRandom;
  if (name == "least_outstanding") return s3::EndpointPolicy::kLeastOutstanding;
  value_error("endpoint_policy must be 'round_robin', 'random' or 'least_outstanding', not '" + name + "'");
}

std::vector<std::string> to_string_list(py::handle value, const char* what) {
  if (py::isinstance<py::str>(value)) return {value.cast<std::string>()};
  if (!py::isinstance<py::sequence>(value)) type_error(std::string(what) + " must be a str or a list of str");
  std::vector<std::string> out;
  for (py::handle item : value) out.push_back(to_string(item, what));
  return out;
}

std::vector<std::pair<std::string, std::string>> to_headers(py::handle value) {
  std::vector<std::pair<std::string, std::string>> out;
  if (py::isinstance<py::dict>(value)) {
    for (auto [name, text] : py::reinterpret_borrow<py::dict>(value))
      out.emplace_back(to_string(name, "headers"), to_string(text, "headers"));
    return out;
  }
  if (!py::isinstance<py::sequence>(value)) type_error("headers must be a dict or a list of (name, value) pairs");
  for (py::handle pair : value) {
    py::tuple t = py::tuple(py::reinterpret_borrow<py::object>(pair));
    if (t.size() != 2) value_error("headers must be (name, value) pairs");
    out.emplace_back(to_string(t[0], "headers"), to_string(t[1], "headers"));
  }
  return out;
}

}  // namespace

uint64_t to_u64(py::handle value, const char* what) {
  if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr())) {
    type_error(std::string(what) + " must be an int, not " + type_name(value));
  }
  py::object number = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!number) throw py::error_already_set();
  int overflow = 0;
  long long as_signed = PyLong_AsLongLongAndOverflow(number.ptr(), &overflow);
  if (overflow < 0 || (overflow == 0 && as_signed < 0)) {
    if (PyErr_Occurred()) throw py::error_already_set();
    value_error(std::string(what) + " must not be negative (got " + std::string(py::str(number)) + ")");
  }
  if (overflow == 0) return static_cast<uint64_t>(as_signed);
  unsigned long long as_unsigned = PyLong_AsUnsignedLongLong(number.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    value_error(std::string(what) + " does not fit in 64 bits");
  }
  return as_unsigned;
}

unsigned to_unsigned(py::handle value, const char* what) {
  uint64_t v = to_u64(value, what);
  if (v > std::numeric_limits<unsigned>::max()) value_error(std::string(what) + " is too large");
  return static_cast<unsigned>(v);
}

EngineConfig engine_config(py::handle threads, py::handle arena_bytes, py::handle memory_limit, py::handle backend,
                           const py::dict& extra) {
  EngineConfig config;
  EngineOptions& o = config.options;
  o.threads = to_unsigned(threads, "threads");
  if (o.threads == 0) value_error("threads must be at least 1");
  if (!arena_bytes.is_none()) o.arena_bytes = to_u64(arena_bytes, "arena_bytes");
  if (!memory_limit.is_none()) config.memory_limit = to_u64(memory_limit, "memory_limit");
  o.backend = to_backend(backend);
  for (auto [key, value] : extra) {
    std::string name = py::str(key);
    if (name == "register_buffers") o.register_buffers = to_bool(value, "register_buffers");
    else if (name == "huge_pages") o.huge_pages = to_bool(value, "huge_pages");
    else if (name == "ring_entries") o.ring_entries = to_unsigned(value, "ring_entries");
    else type_error("Engine() got an unexpected keyword argument '" + name + "'");
  }
  if (config.memory_limit && *config.memory_limit < o.arena_bytes) {
    value_error("memory_limit (" + std::to_string(*config.memory_limit) + ") is smaller than arena_bytes (" +
                std::to_string(o.arena_bytes) + ")");
  }
  o.memory_limit = config.memory_limit;
  return config;
}

py::dict engine_config_kwargs(const EngineConfig& config) {
  const EngineOptions& o = config.options;
  py::dict d;
  d["threads"] = o.threads;
  d["arena_bytes"] = o.arena_bytes;
  d["memory_limit"] = config.memory_limit ? py::object(py::int_(*config.memory_limit)) : py::object(py::none());
  d["backend"] = backend_name(o.backend);
  d["register_buffers"] = o.register_buffers;
  d["huge_pages"] = o.huge_pages;
  d["ring_entries"] = o.ring_entries;
  return d;
}

StoreOptions store_options(const py::dict& options) {
  StoreOptions o;
  HttpOptions& http = o.http;
  s3::S3Options& s3 = o.s3;
  for (auto [key, value] : options) {
    std::string name = py::str(key);
    if (value.is_none()) continue;  // None: the default
    // Planning
    if (name == "max_gap") o.max_gap = to_u64(value, "max_gap");
    else if (name == "part_size") o.part_size = to_u64(value, "part_size");
    else if (name == "max_in_flight") o.max_in_flight = to_unsigned(value, "max_in_flight");
    // HTTP(S)
    else if (name == "connections") http.connections = to_unsigned(value, "connections");
    else if (name == "connect_timeout_ms") http.connect_timeout_ms = to_milliseconds(value, "connect_timeout_ms");
    else if (name == "first_byte_timeout_ms") http.first_byte_timeout_ms = to_milliseconds(value, "first_byte_timeout_ms");
    else if (name == "idle_timeout_ms") http.idle_timeout_ms = to_milliseconds(value, "idle_timeout_ms");
    else if (name == "max_attempts") http.max_attempts = to_unsigned(value, "max_attempts");
    else if (name == "backoff_base_ms") http.backoff_base_ms = to_milliseconds(value, "backoff_base_ms");
    else if (name == "backoff_max_ms") http.backoff_max_ms = to_milliseconds(value, "backoff_max_ms");
    else if (name == "verify_tls") http.verify_tls = to_bool(value, "verify_tls");
    else if (name == "hedge") http.hedge = to_bool(value, "hedge");
    else if (name == "hedge_min_ms") http.hedge_min_ms = to_milliseconds(value, "hedge_min_ms");
    else if (name == "min_throughput_bytes_per_s") {
      http.min_throughput_bytes_per_s = to_unsigned(value, "min_throughput_bytes_per_s");
    } else if (name == "slow_grace_ms") http.slow_grace_ms = to_milliseconds(value, "slow_grace_ms");
    else if (name == "ca_bundle" || name == "ca_file") http.ca_file = to_string(value, "ca_bundle");
    else if (name == "headers") http.headers = to_headers(value);
    // S3
    else if (name == "region") s3.region = to_string(value, "region");
    else if (name == "profile") s3.profile = to_string(value, "profile");
    else if (name == "endpoint_url") s3.endpoints = {to_string(value, "endpoint_url")};
    else if (name == "endpoints") s3.endpoints = to_string_list(value, "endpoints");
    else if (name == "addressing_style") s3.addressing_style = to_addressing_style(value);
    else if (name == "anonymous") s3.anonymous = to_bool(value, "anonymous");
    else if (name == "endpoint_policy") s3.policy = to_endpoint_policy(value);
    else if (name == "pin_by_rank") s3.pin_by_rank = to_bool(value, "pin_by_rank");
    else if (name == "endpoint_cooldown_ms") s3.endpoint_cooldown_ms = to_milliseconds(value, "endpoint_cooldown_ms");
    else type_error("Store.open() got an unexpected keyword argument '" + name + "'");
  }
  if (options.contains("endpoint_url") && options.contains("endpoints") && !options["endpoint_url"].is_none() &&
      !options["endpoints"].is_none()) {
    value_error("give endpoint_url or endpoints, not both");
  }
  return o;
}

py::dict stats_dict(const Stats& s) {
  py::dict d;
  d["requests"] = s.requests;
  d["bytes_requested"] = s.bytes_requested;
  d["bytes_fetched"] = s.bytes_fetched;
  d["bytes_body"] = s.bytes_body;
  d["bytes_copied_user"] = s.bytes_copied_user;
  d["items"] = s.items;
  d["retries"] = s.retries;
  d["errors"] = s.errors;
  d["arena_waits"] = s.arena_waits;
  d["connections_opened"] = s.connections_opened;
  d["tls_handshakes"] = s.tls_handshakes;
  d["tls_resumptions"] = s.tls_resumptions;
  d["slow_connections"] = s.slow_connections;
  d["hedges_sent"] = s.hedges_sent;
  d["hedges_won"] = s.hedges_won;
  d["hedge_bytes_wasted"] = s.hedge_bytes_wasted;
  d["max_gap"] = s.max_gap;
  d["backend"] = s.backend;
  d["buffers_registered"] = s.buffers_registered;
  d["fallback_reason"] = s.fallback_reason;
  return d;
}

const char* error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid_argument";
    case ErrorKind::kIo: return "io";
    case ErrorKind::kNetwork: return "network";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kHttpStatus: return "http_status";
    case ErrorKind::kS3: return "s3";
    case ErrorKind::kIntegrity: return "integrity";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kCancelled: return "cancelled";
    case ErrorKind::kResourceExhausted: return "resource_exhausted";
  }
  return "unknown";
}

}  // namespace ringfetch::python
