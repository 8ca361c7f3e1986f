// How caller memory is found (see destination.hpp). torch.Tensor has no buffer protocol and no
// __array_interface__, so tensors are recognised by duck typing; the package never links libtorch.
#include "destination.hpp"

#include <cstdint>
#include <string>

namespace ringfetch::python {
namespace {

std::string type_name(py::handle value) { return py::str(py::type::handle_of(value).attr("__name__")); }

[[noreturn]] void unsupported(py::handle object, const char* what) {
  throw py::type_error(std::string(what) + "= must be a writable, C-contiguous buffer (bytearray, numpy.ndarray, "
                       "torch.Tensor on the CPU, writable memoryview, ...), not " + type_name(object));
}

bool looks_like_tensor(py::handle object) {
  return py::hasattr(object, "data_ptr") && py::hasattr(object, "is_contiguous") &&
         py::hasattr(object, "element_size") && py::hasattr(object, "numel") && py::hasattr(object, "device");
}

// Item size of an __array_interface__ typestr such as "<f4" or "|u1".
size_t typestr_itemsize(const std::string& typestr, const char* what) {
  if (typestr.size() < 3) throw py::value_error(std::string(what) + "= has a bad __array_interface__ typestr");
  return std::stoul(typestr.substr(2));
}

}  // namespace

std::shared_ptr<Destination> Destination::acquire(py::handle object, const char* what) {
  std::shared_ptr<Destination> d(new Destination());
  d->owner_ = py::reinterpret_borrow<py::object>(object);

  if (PyObject_CheckBuffer(object.ptr())) {
    if (PyObject_GetBuffer(object.ptr(), &d->buffer_, PyBUF_FULL_RO) != 0) throw py::error_already_set();
    d->has_buffer_ = true;
    if (d->buffer_.readonly) {
      throw py::type_error(std::string(what) + "= must be writable; this " + type_name(object) + " is read-only");
    }
    if (!PyBuffer_IsContiguous(&d->buffer_, 'C')) {
      throw py::value_error(std::string(what) + "= must be C-contiguous; this " + type_name(object) + " is not");
    }
    d->bytes_ = {static_cast<std::byte*>(d->buffer_.buf), static_cast<size_t>(d->buffer_.len)};
    return d;
  }

  if (looks_like_tensor(object)) {
    std::string device = py::str(object.attr("device").attr("type"));
    if (device != "cpu") {
      throw py::value_error(std::string(what) + "= must be in CPU memory; this tensor is on '" + device + "'");
    }
    if (!object.attr("is_contiguous")().cast<bool>()) {
      throw py::value_error(std::string(what) + "= must be contiguous; call .contiguous() on the tensor first");
    }
    const auto address = object.attr("data_ptr")().cast<uintptr_t>();
    const auto size = object.attr("numel")().cast<size_t>() * object.attr("element_size")().cast<size_t>();
    d->bytes_ = {reinterpret_cast<std::byte*>(address), size};
    return d;
  }

  if (py::hasattr(object, "__array_interface__")) {
    py::dict interface = object.attr("__array_interface__");
    py::tuple data = interface["data"];
    if (data[1].cast<bool>()) {
      throw py::type_error(std::string(what) + "= must be writable; this " + type_name(object) + " is read-only");
    }
    size_t itemsize = typestr_itemsize(py::str(interface["typestr"]), what);
    size_t count = 1;
    py::tuple shape = interface["shape"];
    for (py::handle n : shape) count *= n.cast<size_t>();
    if (interface.contains("strides") && !interface["strides"].is_none()) {
      size_t expected = itemsize;
      py::tuple strides = interface["strides"];
      for (size_t i = shape.size(); i-- > 0;) {
        if (shape[i].cast<size_t>() > 1 && strides[i].cast<size_t>() != expected) {
          throw py::value_error(std::string(what) + "= must be C-contiguous; this " + type_name(object) + " is not");
        }
        expected *= shape[i].cast<size_t>();
      }
    }
    d->bytes_ = {reinterpret_cast<std::byte*>(data[0].cast<uintptr_t>()), count * itemsize};
    return d;
  }

  unsupported(object, what);
}

Destination::~Destination() {
  if (has_buffer_) PyBuffer_Release(&buffer_);
}

}  // namespace ringfetch::python
