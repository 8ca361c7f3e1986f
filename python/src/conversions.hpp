// Every conversion between Python values and the C++ API's option and counter structs lives here, so that a
// change of EngineOptions, StoreOptions or Stats is adapted in one file.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ringfetch/ringfetch.hpp"

namespace ringfetch::python {

namespace py = pybind11;

// An int (or anything with __index__) as a non-negative 64-bit count: TypeError for other types, ValueError for
// negative or too large values. `what` names the argument in the message.
uint64_t to_u64(py::handle value, const char* what);
// Same, for values that must also fit an unsigned (thread counts, connections, ...).
unsigned to_unsigned(py::handle value, const char* what);

// What Python's Engine(...) was given: the C++ options plus what the C++ API may not take yet.
struct EngineConfig {
  EngineOptions options;
  std::optional<uint64_t> memory_limit;  // the arena may grow to this; applied when EngineOptions has the field
};

// Engine(threads=1, arena_bytes=None, memory_limit=None, backend="auto", **extra): `extra` holds the rarer
// EngineOptions fields (register_buffers, huge_pages, ring_entries). Unknown names are a TypeError.
EngineConfig engine_config(py::handle threads, py::handle arena_bytes, py::handle memory_limit, py::handle backend,
                           const py::dict& extra);
// The arguments that rebuild `config` (for pickling and repr).
py::dict engine_config_kwargs(const EngineConfig& config);

// Store.open(url, engine, **options): see the module docstring for the names. Unknown names are a TypeError.
StoreOptions store_options(const py::dict& options);

py::dict stats_dict(const Stats& stats);

// "invalid_argument", "io", "network", ... (the values of ringfetch.ErrorKind).
const char* error_kind_name(ErrorKind kind) noexcept;

}  // namespace ringfetch::python
