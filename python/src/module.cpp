// ringfetch._ringfetch: the pybind11 module. Only the public C++ API is used. The pure-Python package
// (ringfetch/__init__.py) re-exports these classes and adds the io.RawIOBase reader and the exception classes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "conversions.hpp"
#include "errors.hpp"
#include "lifecycle.hpp"
#include "objects.hpp"

namespace py = pybind11;
using namespace ringfetch::python;

namespace {

constexpr const char* kModuleDoc = R"(Native part of the ringfetch package; use `import ringfetch`.)";

constexpr const char* kEngineDoc = R"(Engine(threads=1, arena_bytes=None, memory_limit=None, backend="auto", **options)

The io_uring (or epoll) threads, the registered memory arena and the counters. One per process is typical;
stores made on it share its threads and memory.

threads       engine threads, one ring each
arena_bytes   registered memory for items without a destination (default 256 MiB); bounds memory in flight
memory_limit  the most memory the arena may grow to (taken by the v2 engine; kept and reported until then)
backend       "auto" (io_uring, else epoll), "io_uring" (or an error saying why not), "epoll"
options       register_buffers=True, huge_pages=True, ring_entries=256

After os.fork() (e.g. in a DataLoader worker) the engine re-creates itself in the child on first use.)";

constexpr const char* kStoreDoc = R"(A root URL bound to an Engine: file:///dir, direct:///dir, http(s)://host:port/prefix,
s3://bucket/prefix. Make one with Store.open(url, engine, **options).)";

constexpr const char* kOpenDoc = R"(open(url, engine, **options) -> Store

Options (all optional; None means the default):
  max_gap, part_size, max_in_flight       planning: read gaps up to max_gap, requests of at most part_size bytes
  connections, connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, max_attempts,
  backoff_base_ms, backoff_max_ms, verify_tls, ca_bundle (or ca_file), headers      HTTP(S)
  region, profile, endpoint_url, endpoints, addressing_style ("auto"|"path"|"virtual"), anonymous,
  endpoint_policy ("round_robin"|"random"|"least_outstanding"), pin_by_rank, endpoint_cooldown_ms       S3
Raises InvalidArgumentError (a ValueError) for a bad URL or option value, TypeError for unknown options.)";

constexpr const char* kFetchDoc = R"(fetch(plan, callback=None) -> Batch

Plans, coalesces and starts reading `plan`. Iterate the batch for the items in plan order, each as soon as it
is complete. With a callback, each item is passed to callback(view) from an engine thread (holding the GIL) in
completion order; keep the batch and call wait(), which re-raises the first exception of the callback.
Dropping or closing a batch cancels what is not read yet.)";

constexpr const char* kViewDoc = R"(One fetched item: a read-only buffer sharing ringfetch's memory (or the item's into=
destination). memoryview(v), numpy.frombuffer(v, dtype) and torch.frombuffer(v, dtype=...) do not copy, and the
memory lives as long as any of them does. Overlapping items of one fetch share memory.)";

py::buffer_info view_buffer(PyView& v) {
  static const std::byte empty{};
  const auto bytes = v.item.bytes();
  const void* data = bytes.empty() ? &empty : bytes.data();
  return py::buffer_info(const_cast<void*>(data), 1, "B", 1, {static_cast<py::ssize_t>(bytes.size())}, {1},
                         /*readonly=*/true);
}

std::string view_repr(const PyView& v) {
  return "<ringfetch.View key='" + v.item.object() + "' offset=" + std::to_string(v.item.offset()) +
         " length=" + std::to_string(v.item.size()) + " index=" + std::to_string(v.item.index()) + ">";
}

}  // namespace

PYBIND11_MODULE(_ringfetch, m) {
  m.doc() = kModuleDoc;
  remember_main_thread(py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());
  register_error_translator();
  ExitGate::install_fork_handler();
  // Runs before the interpreter starts finalizing: from then on engine threads no longer enter Python.
  py::module_::import("atexit").attr("register")(py::cpp_function([] { shut_down_everything(); }));

  py::class_<PyEngine>(m, "Engine", kEngineDoc)
      .def(py::init([](py::object threads, py::object arena_bytes, py::object memory_limit, py::object backend,
                       py::kwargs options) {
             return std::make_unique<PyEngine>(engine_config(threads, arena_bytes, memory_limit, backend, options));
           }),
           py::arg("threads") = 1, py::arg("arena_bytes") = py::none(), py::arg("memory_limit") = py::none(),
           py::arg("backend") = "auto")
      .def("stats", [](PyEngine& e) { return stats_dict(e.engine().stats()); },
           "Counters as a dict: requests, bytes_requested, bytes_fetched, bytes_body, bytes_copied_user, items, "
           "retries, errors, arena_waits, connections_opened, tls_handshakes, tls_resumptions, slow_connections, hedges_sent, hedges_won, hedge_bytes_wasted, max_gap, backend, "
           "buffers_registered, fallback_reason.")
      .def("reset_stats", [](PyEngine& e) { e.engine().reset_stats(); }, "Sets the counters to zero.")
      .def("register_memory", [](PyEngine& e, py::handle buffer) { return std::make_unique<PyRegistration>(e, buffer); },
           py::arg("buffer"),
           "Registers caller memory (a writable, C-contiguous buffer or CPU tensor) with every ring, so items "
           "filled into it use READ_FIXED. Returns a MemoryRegistration; keep it while fetching (close() or "
           "dropping it unregisters). Unregistered destinations are still filled in place, with plain reads.")
      .def_property_readonly("options", [](PyEngine& e) { return engine_config_kwargs(e.config()); },
                             "The arguments the engine was made with.")
      .def_property_readonly("memory_limit", [](PyEngine& e) -> py::object {
             return e.config().memory_limit ? py::object(py::int_(*e.config().memory_limit)) : py::none();
           })
      .def("close", &PyEngine::close,
           "Stops using this engine: its threads end once the stores, batches and readers made on it are gone.")
      .def_property_readonly("closed", &PyEngine::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyEngine& e, py::args) { e.close(); })
      .def("__repr__", [](PyEngine& e) {
        return "<ringfetch.Engine " + std::string(py::str(engine_config_kwargs(e.config()))) + ">";
      })
      .def(py::pickle([](PyEngine& e) { return engine_config_kwargs(e.config()); },
                      [](py::dict d) {
                        py::dict extra;
                        for (const char* k : {"register_buffers", "huge_pages", "ring_entries"})
                          if (d.contains(k)) extra[k] = d[k];
                        return std::make_unique<PyEngine>(
                            engine_config(d["threads"], d["arena_bytes"], d["memory_limit"], d["backend"], extra));
                      }));

  py::class_<PyRegistration>(m, "MemoryRegistration", "Caller memory registered with an Engine's rings.")
      .def_property_readonly("registered", &PyRegistration::registered,
                             "False when the kernel refused (the memory is still filled in place, with plain reads).")
      .def("close", &PyRegistration::close, "Unregisters the memory.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRegistration& r, py::args) { r.close(); });

  py::class_<PyPlan>(m, "Plan", "The byte ranges to fetch: plan.add(key, offset, length, into=None).")
      .def(py::init<>())
      .def("add", &PyPlan::add, py::arg("key"), py::arg("offset"), py::arg("length"), py::arg("into") = py::none(),
           "Adds an item and returns its index (View.index). `into` is a writable, C-contiguous buffer of exactly "
           "`length` bytes (bytearray, numpy.ndarray, CPU torch.Tensor, ...), filled in place; it is kept alive by "
           "the plan, its batches and views. ValueError for negative values or a wrong size, TypeError for a "
           "read-only or unsupported into=.")
      .def("__len__", [](const PyPlan& p) { return p.plan.size(); })
      .def("clear", [](PyPlan& p) {
        p.plan.clear();
        p.destinations.clear();
      })
      .def("__repr__", [](const PyPlan& p) { return "<ringfetch.Plan items=" + std::to_string(p.plan.size()) + ">"; });

  py::class_<PyView>(m, "View", py::buffer_protocol(), kViewDoc)
      .def_buffer(&view_buffer)
      .def_property_readonly("key", [](const PyView& v) { return v.item.object(); }, "The object (key) of the item.")
      .def_property_readonly("offset", [](const PyView& v) { return v.item.offset(); },
                             "Object offset of the first byte.")
      .def_property_readonly("index", [](const PyView& v) { return v.item.index(); }, "Index of the item in its Plan.")
      .def_property_readonly("ok", [](const PyView& v) { return v.item.ok(); },
                             "False for an item that failed (only callbacks see those; iteration raises).")
      .def_property_readonly("error", [](const PyView& v) -> py::object {
             return v.item.ok() ? py::none() : make_exception(v.item.status());
           }, "The item's error as a ringfetch.Error, or None.")
      .def("__len__", [](const PyView& v) { return v.item.size(); })
      .def("tobytes", [](const PyView& v) {
        return py::bytes(reinterpret_cast<const char*>(v.item.bytes().data()), v.item.size());
      }, "A copy of the bytes.")
      .def("__repr__", &view_repr);

  py::class_<PyBatch>(m, "Batch", "The items of one fetch: an iterator of View in plan order.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyBatch& b) {
        std::optional<PyView> v = b.next();
        if (!v) throw py::stop_iteration();
        return std::move(*v);
      })
      .def("wait", &PyBatch::wait,
           "Blocks until every item is complete; raises the first item error, then the first callback exception.")
      .def("__len__", &PyBatch::size, "Number of items that will be delivered (zero-length items are skipped).")
      .def("close", &PyBatch::close, "Cancels what is not read yet and waits for reads in flight. Views stay valid.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyBatch& b, py::args) { b.close(); });

  py::class_<PyStore>(m, "Store", kStoreDoc)
      .def_static("open", [](const std::string& url, py::object engine, py::kwargs options) {
             if (!py::isinstance<PyEngine>(engine)) throw py::type_error("engine must be a ringfetch.Engine");
             return std::make_unique<PyStore>(engine, url, py::dict(options));
           }, py::arg("url"), py::arg("engine"), kOpenDoc)
      .def("fetch", [](PyStore& s, PyPlan& plan, py::object callback) {
             return std::make_unique<PyBatch>(s, plan, std::move(callback));
           }, py::arg("plan"), py::arg("callback") = py::none(), kFetchDoc)
      .def("size", [](PyStore& s, const std::string& key) {
             ringfetch::Store& store = s.store();
             return without_gil([&] { return store.size(key); });
           }, py::arg("key"), "Size of an object in bytes.")
      .def("_reader", [](PyStore& s, const std::string& key, py::object ranges) {
             return std::make_unique<PyReader>(s, key, std::move(ranges));
           }, py::arg("key"), py::arg("ranges") = py::none())
      .def_property_readonly("url", &PyStore::url)
      .def_property_readonly("engine", &PyStore::engine_object)
      .def("__repr__", [](PyStore& s) { return "<ringfetch.Store '" + s.url() + "'>"; })
      .def(py::pickle([](PyStore& s) { return py::make_tuple(s.url(), s.engine_object(), s.options()); },
                      [](py::tuple t) {
                        return std::make_unique<PyStore>(t[1], t[0].cast<std::string>(), t[2].cast<py::dict>());
                      }));

  py::class_<PyReader>(m, "_NativeReader")
      .def("read", &PyReader::read, py::arg("size"))
      .def("readall", &PyReader::readall)
      .def("readinto", &PyReader::readinto, py::arg("buffer"))
      .def("read_view", &PyReader::read_view, py::arg("size"))
      .def("seek", &PyReader::seek, py::arg("offset"), py::arg("whence") = 0)
      .def("tell", &PyReader::tell)
      .def("size", &PyReader::size)
      .def("close", &PyReader::close)
      .def_property_readonly("closed", &PyReader::closed)
      .def_property_readonly("key", &PyReader::key);
}
