#pragma once
// Versions, threads and compute devices of the running process, and the clock in ISO 8601.
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

namespace segscope::core {

struct CudaDeviceInfo {
    int index = 0;
    std::string name;
    std::uint64_t totalMemoryBytes = 0;
};

// How LibTorch's CUDA backend (libtorch_cuda.so) came into this process.
//
// The core links only LibTorch's CPU libraries (libtorch_cpu.so, libc10.so). An initialiser of
// libsegscope_core, which runs when the library loads and so before any CUDA query (LibTorch caches
// the first answer to "is CUDA there?"), loads libtorch_cuda.so with RTLD_NOW | RTLD_GLOBAL from the
// folder that holds libtorch_cpu.so. With the CUDA torch wheel of the build tree, CUDA works when a
// GPU is present; an installation packaged without the CUDA libraries simply runs on the CPU.
enum class CudaBackendState {
    Loaded,         // loaded from libraryPath by that initialiser
    AlreadyLoaded,  // already in the process before it ran (a program that links libtorch.so)
    NotInstalled,   // no libtorch_cuda.so at libraryPath: CPU only
    Failed,         // the file is there but could not be loaded; error holds dlerror()'s text
};

struct CudaBackendStatus {
    CudaBackendState state = CudaBackendState::NotInstalled;
    std::string libraryPath;  // where libtorch_cuda.so was looked for, or found
    std::string error;        // why loading failed; empty unless state is Failed
};

// The outcome of that load. Fixed before main() runs; may be read from any thread.
const CudaBackendStatus& cudaBackendStatus();

struct RuntimeInfo {
    std::string segscopeVersion;
    std::string torchVersion;
    std::string opencvVersion;
    int intraOpThreads = 0;
    int hardwareThreads = 0;
    CudaBackendStatus cudaBackend;
    bool cudaAvailable = false;
    std::vector<CudaDeviceInfo> cudaDevices;
};

std::string segscopeVersion();

// Queries LibTorch and, through the CUDA driver when it is installed, the GPUs.
RuntimeInfo runtimeInfo();
// Multi-line text for `--version`. The CUDA backend line reads "CUDA backend: loaded (PATH)",
// "already loaded (PATH)", "not installed (no PATH)" or "failed to load PATH: ERROR".
std::string formatRuntimeInfo(const RuntimeInfo& info);

// LibTorch's OpenMP runtime (libgomp) reads OMP_WAIT_POLICY once, when it loads, and by default
// its idle threads spin. On a busy machine the spinning starves the data loader, the GUI and
// everything else: demo training measured 0.5 img/s spinning against 8.7 img/s passive on a
// loaded 2-core machine. This re-executes the program (same argv) with OMP_WAIT_POLICY=PASSIVE
// unless the variable is already set; it returns only when no re-exec happened. Call it first
// thing in main().
void preferPassiveOpenMpWait(char** argv);

// The most intra-op threads SegScope uses on this machine: 4 per hardware thread, at least 16
// and at most 1024. Every thread costs memory (OpenMP's per-thread state and stacks), so a
// request beyond this is refused by the CLI and clamped by setIntraOpThreads().
int maxIntraOpThreads();

// Sets LibTorch's intra-op thread count; threads <= 0 means the machine's cores, and more than
// maxIntraOpThreads() means maxIntraOpThreads().
void setIntraOpThreads(int threads);

// "auto" (CUDA device 0 when present, else CPU), "cpu", "cuda" or "cuda:N". Throws Error naming
// runtime.device for an unknown name or a CUDA device this machine does not have.
c10::Device resolveDevice(const std::string& name);
// Names of the devices this machine offers: "cpu", then "cuda:0", ….
std::vector<std::string> availableDevices();

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ" (the store's and the caches' timestamps).
std::string isoNow();

}  // namespace segscope::core
