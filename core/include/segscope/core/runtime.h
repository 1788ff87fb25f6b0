#pragma once
// Versions, threads and compute devices of the running process.
#include <cstdint>
#include <string>
#include <vector>

namespace segscope::core {

struct CudaDeviceInfo {
    int index = 0;
    std::string name;
    std::uint64_t totalMemoryBytes = 0;
};

struct RuntimeInfo {
    std::string segscopeVersion;
    std::string torchVersion;
    std::string opencvVersion;
    int intraOpThreads = 0;
    int hardwareThreads = 0;
    bool cudaAvailable = false;
    std::vector<CudaDeviceInfo> cudaDevices;
};

std::string segscopeVersion();

// Queries LibTorch and, through the CUDA driver when it is installed, the GPUs.
RuntimeInfo runtimeInfo();
// Multi-line text for `--version`.
std::string formatRuntimeInfo(const RuntimeInfo& info);

// LibTorch's OpenMP runtime (libgomp) reads OMP_WAIT_POLICY once, when it loads, and by default
// its idle threads spin. On a busy machine the spinning starves the data loader, the GUI and
// everything else: demo training measured 0.5 img/s spinning against 8.7 img/s passive on a
// loaded 2-core machine. This re-executes the program (same argv) with OMP_WAIT_POLICY=PASSIVE
// unless the variable is already set; it returns only when no re-exec happened. Call it first
// thing in main().
void preferPassiveOpenMpWait(char** argv);

// Sets LibTorch's intra-op thread count; threads <= 0 means the machine's cores.
void setIntraOpThreads(int threads);

} // namespace segscope::core
