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

// Sets LibTorch's intra-op thread count; threads <= 0 means the machine's cores.
void setIntraOpThreads(int threads);

} // namespace segscope::core
