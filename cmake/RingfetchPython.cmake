# Finds what the Python package needs: Debian's /usr/bin/python3 (its development files) and pybind11.
# RINGFETCH_BUILD_PYTHON is ON (required), OFF, or AUTO (built when both are found). Sets RINGFETCH_PYTHON_ENABLED.
# The interpreter is pinned because the `python3` first on PATH may be another one (pyenv) without torch/numpy.
set(RINGFETCH_BUILD_PYTHON AUTO CACHE STRING
    "Build the Python package: ON, OFF or AUTO (when pybind11 and the Python 3 development files are found)")
set_property(CACHE RINGFETCH_BUILD_PYTHON PROPERTY STRINGS AUTO ON OFF)
set(RINGFETCH_PYTHON_EXECUTABLE /usr/bin/python3 CACHE FILEPATH
    "Python interpreter the module is built for (and the Python tests run with)")

set(RINGFETCH_PYTHON_ENABLED OFF)
if(NOT RINGFETCH_BUILD_PYTHON STREQUAL "OFF")
  set(_rf_python_quiet QUIET)
  if(RINGFETCH_BUILD_PYTHON STREQUAL "ON")
    set(_rf_python_quiet REQUIRED)
  endif()
  set(Python_EXECUTABLE ${RINGFETCH_PYTHON_EXECUTABLE})
  find_package(Python 3.8 COMPONENTS Interpreter Development.Module ${_rf_python_quiet})
  if(Python_FOUND)
    set(PYBIND11_FINDPYTHON ON)
    find_package(pybind11 2.6 CONFIG ${_rf_python_quiet})
  endif()
  if(Python_FOUND AND pybind11_FOUND)
    set(RINGFETCH_PYTHON_ENABLED ON)
    message(STATUS "ringfetch: building the Python package for ${Python_EXECUTABLE} (${Python_VERSION}), "
                   "pybind11 ${pybind11_VERSION}")
  else()
    message(STATUS "ringfetch: not building the Python package (needs pybind11-dev and python3-dev)")
  endif()
endif()
