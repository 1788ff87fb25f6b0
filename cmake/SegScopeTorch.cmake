# Finds LibTorch 2.x and exposes it as the target segscope::torch.
#
#  1. An official LibTorch archive (CPU or CUDA), given through Torch_DIR or CMAKE_PREFIX_PATH,
#     is found through its own TorchConfig.cmake. That is what GPU users do.
#  2. Otherwise the pinned torch wheel in SegScope's environment (scripts/setup.sh) is imported
#     directly from torch.utils.cmake_prefix_path's tree. The CUDA wheel's TorchConfig insists on
#     a CUDA toolkit at configure time and then links that toolkit's libnvrtc, whatever its
#     version, instead of the wheel's own; importing the libraries directly links and runs on
#     machines without a GPU or toolkit.
#
# Either way segscope::torch links only the CPU libraries, libtorch_cpu.so and libc10.so. CUDA is
# a run-time backend: libsegscope_core loads libtorch_cuda.so from the same folder when it is
# there (core/src/cuda_backend.cpp), so the build tree keeps CUDA on GPU machines while an
# installation can leave the CUDA libraries (several GB) out and still start.
set(SEGSCOPE_PYTHON "$ENV{HOME}/.cache/segscope/venv/bin/python" CACHE FILEPATH
    "Python of the environment that carries the torch wheel and the reference packages")

set(_explicit_torch OFF)
if(DEFINED Torch_DIR OR DEFINED ENV{Torch_DIR} OR CMAKE_PREFIX_PATH OR DEFINED ENV{CMAKE_PREFIX_PATH})
  find_package(Torch CONFIG QUIET)
  if(Torch_FOUND)
    set(_explicit_torch ON)
  endif()
endif()

add_library(segscope_torch INTERFACE)
add_library(segscope::torch ALIAS segscope_torch)

if(_explicit_torch)
  message(STATUS "SegScope: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
  get_filename_component(_torch_libdir "${TORCH_LIBRARY}" DIRECTORY)
  target_include_directories(segscope_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(segscope_torch INTERFACE ${_torch_flags})
  target_link_libraries(segscope_torch INTERFACE
    "${_torch_libdir}/libtorch_cpu.so" "${_torch_libdir}/libc10.so" Threads::Threads)
else()
  if(NOT EXISTS "${SEGSCOPE_PYTHON}")
    message(FATAL_ERROR "LibTorch not found. Run scripts/setup.sh, or pass -DTorch_DIR=<libtorch>/share/cmake/Torch")
  endif()
  execute_process(
    COMMAND "${SEGSCOPE_PYTHON}" -c
      "import torch, torch.utils, os; print(torch.utils.cmake_prefix_path); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__.split('+')[0])"
    OUTPUT_VARIABLE _torch_out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${SEGSCOPE_PYTHON} cannot import torch; run scripts/setup.sh")
  endif()
  string(REPLACE "\n" ";" _torch_out "${_torch_out}")
  list(GET _torch_out 0 _torch_prefix)
  list(GET _torch_out 1 _torch_abi)
  list(GET _torch_out 2 Torch_VERSION)
  get_filename_component(_torch_root "${_torch_prefix}/../.." ABSOLUTE)
  set(_torch_libdir "${_torch_root}/lib")
  foreach(_lib torch_cpu c10)
    if(NOT EXISTS "${_torch_libdir}/lib${_lib}.so")
      message(FATAL_ERROR "torch wheel at ${_torch_root} lacks lib${_lib}.so")
    endif()
  endforeach()
  message(STATUS "SegScope: LibTorch ${Torch_VERSION} from the wheel at ${_torch_root}")
  target_include_directories(segscope_torch SYSTEM INTERFACE
    "${_torch_root}/include" "${_torch_root}/include/torch/csrc/api/include")
  target_compile_definitions(segscope_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_torch_abi})
  target_link_libraries(segscope_torch INTERFACE
    "${_torch_libdir}/libtorch_cpu.so" "${_torch_libdir}/libc10.so" Threads::Threads)
endif()

# Directory holding libtorch*.so, for RPATH, packaging and test environments.
set(SEGSCOPE_TORCH_LIBDIR "${_torch_libdir}" CACHE INTERNAL "")
set(SEGSCOPE_TORCH_VERSION "${Torch_VERSION}" CACHE INTERNAL "")
