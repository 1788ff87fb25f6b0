// Loads LibTorch's CUDA backend at run time (see CudaBackendStatus in runtime.h).
//
// Linking libtorch.so would make libtorch_cuda.so, and through it several GB of CUDA libraries, a
// hard dependency of every binary, so an installation could not leave them out. Loading it here
// instead keeps CUDA when the libraries are there and lets a CPU-only tree start without them.
#include "segscope/core/runtime.h"

#include <ATen/detail/CUDAHooksInterface.h>

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace segscope::core {

namespace {

// A function-local static: it is constructed on first use, so the initialiser below can fill it
// although it runs before this file's ordinary static objects are constructed.
CudaBackendStatus& mutableStatus() {
    static CudaBackendStatus status;
    return status;
}

// The folder of the libtorch_cpu.so this process loaded, or empty when it cannot be told.
std::string torchLibraryFolder() {
    Dl_info info{};
    // getCUDAHooks is defined in libtorch_cpu.so, so the object holding its address is that file.
    if (dladdr(reinterpret_cast<void*>(&at::detail::getCUDAHooks), &info) == 0 || info.dli_fname == nullptr) return {};
    std::string folder = info.dli_fname;
    const auto slash = folder.rfind('/');
    folder = slash == std::string::npos ? std::string(".") : folder.substr(0, slash);
    char resolved[PATH_MAX];
    if (realpath(folder.c_str(), resolved) != nullptr) folder = resolved;
    return folder;
}

void loadCudaBackend() {
    CudaBackendStatus& status = mutableStatus();
    const std::string folder = torchLibraryFolder();
    if (folder.empty()) {
        status.state = CudaBackendState::Failed;
        status.libraryPath = "libtorch_cuda.so";
        status.error = "cannot locate the folder of libtorch_cpu.so";
        return;
    }
    status.libraryPath = folder + "/libtorch_cuda.so";
    // A program that links libtorch.so itself already has the backend.
    if (void* linked = dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_NOLOAD)) {
        status.state = CudaBackendState::AlreadyLoaded;
        link_map* map = nullptr;
        if (dlinfo(linked, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr &&
            map->l_name[0] != '\0')
            status.libraryPath = map->l_name;
        return;
    }
    if (access(status.libraryPath.c_str(), F_OK) != 0) {
        status.state = CudaBackendState::NotInstalled;
        return;
    }
    // RTLD_GLOBAL: LibTorch later dlopens more CUDA pieces (libtorch_cuda_linalg.so) that resolve
    // symbols of libtorch_cuda.so through the global scope. The handle is never closed: the
    // backend registers kernels and hooks that must outlive every tensor.
    if (dlopen(status.libraryPath.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr) {
        status.state = CudaBackendState::Loaded;
        return;
    }
    const char* error = dlerror();
    status.state = CudaBackendState::Failed;
    status.error = error != nullptr ? error : "unknown dlopen error";
}

// Priority 101, the earliest a program may use, runs this before the default-priority static
// initialisers of libsegscope_core, any of which might create a tensor and so ask LibTorch about
// CUDA; LibTorch's own libraries are initialised before this one because it depends on them.
__attribute__((constructor(101))) void loadCudaBackendAtStartup() {
    loadCudaBackend();
}

}  // namespace

const CudaBackendStatus& cudaBackendStatus() {
    return mutableStatus();
}

}  // namespace segscope::core
