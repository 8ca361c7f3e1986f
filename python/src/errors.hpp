// ringfetch::Error as a Python exception of the hierarchy in ringfetch/_errors.py (kind, status, s3_code,
// request_id; FileNotFoundError / ValueError / MemoryError / ... mix-ins chosen there).
#pragma once

#include <pybind11/pybind11.h>

#include "ringfetch/error.hpp"

namespace ringfetch::python {

namespace py = pybind11;

// Where an error came from: the reader's sequential-access errors are ValueErrors, other kUnsupported are not.
enum class ErrorOrigin { kGeneral, kReader };

// The Python exception object for `error` (not raised).
py::object make_exception(const Error& error, ErrorOrigin origin = ErrorOrigin::kGeneral);
py::object make_exception(const Status& status);
// Sets `error` as the current Python exception and throws py::error_already_set.
[[noreturn]] void raise_error(const Error& error, ErrorOrigin origin = ErrorOrigin::kGeneral);

// Registers the translator for ringfetch::Error thrown out of any bound function.
void register_error_translator();

}  // namespace ringfetch::python
