// Builds Python exceptions through ringfetch._errors.from_native, which owns the mapping from kind (and status,
// S3 code, message) to the exception class, so the mapping is written once, in Python.
#include "errors.hpp"

#include "conversions.hpp"

namespace ringfetch::python {
namespace {

py::object build(ErrorKind kind, const std::string& message, int status, const std::string& s3_code,
                 const std::string& request_id, ErrorOrigin origin) {
  py::object factory = py::module_::import("ringfetch._errors").attr("from_native");
  return factory(error_kind_name(kind), message, status, s3_code, request_id,
                 origin == ErrorOrigin::kReader ? "reader" : "general");
}

}  // namespace

py::object make_exception(const Error& error, ErrorOrigin origin) {
  return build(error.kind(), error.what(), error.http_status(), error.s3_code(), error.request_id(), origin);
}

py::object make_exception(const Status& status) {
  return build(status.kind(), status.message(), status.http_status(), status.s3_code(), status.request_id(),
               ErrorOrigin::kGeneral);
}

void raise_error(const Error& error, ErrorOrigin origin) {
  py::object exception = make_exception(error, origin);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
  throw py::error_already_set();
}

void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const Error& error) {
      py::object exception = make_exception(error);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
    }
  });
}

}  // namespace ringfetch::python
