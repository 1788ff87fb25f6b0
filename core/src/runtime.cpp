#include "segscope/core/runtime.h"

#include "segscope/core/error.h"
#include "segscope/core/version_config.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/version.h>
#include <opencv2/core/version.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include <sstream>
#include <thread>

namespace segscope::core {

std::string segscopeVersion() {
    return SEGSCOPE_VERSION_STRING;
}

namespace {

// Device names come from the CUDA driver API, loaded at run time, so the core needs no CUDA
// headers and runs unchanged where no driver is installed.
std::vector<CudaDeviceInfo> queryDriverDevices(int expected) {
    std::vector<CudaDeviceInfo> devices;
    void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    using InitFn = int (*)(unsigned);
    using GetFn = int (*)(int*, int);
    using NameFn = int (*)(char*, int, int);
    using MemFn = int (*)(std::size_t*, int);
    InitFn init = driver ? reinterpret_cast<InitFn>(dlsym(driver, "cuInit")) : nullptr;
    GetFn get = driver ? reinterpret_cast<GetFn>(dlsym(driver, "cuDeviceGet")) : nullptr;
    NameFn name = driver ? reinterpret_cast<NameFn>(dlsym(driver, "cuDeviceGetName")) : nullptr;
    MemFn mem = driver ? reinterpret_cast<MemFn>(dlsym(driver, "cuDeviceTotalMem_v2")) : nullptr;
    const bool usable = init && get && name && mem && init(0) == 0;
    for (int i = 0; i < expected; ++i) {
        CudaDeviceInfo info;
        info.index = i;
        info.name = "CUDA device " + std::to_string(i);
        int handle = 0;
        if (usable && get(&handle, i) == 0) {
            char buffer[256] = {};
            if (name(buffer, sizeof buffer, handle) == 0) info.name = buffer;
            std::size_t bytes = 0;
            if (mem(&bytes, handle) == 0) info.totalMemoryBytes = bytes;
        }
        devices.push_back(info);
    }
    if (driver) dlclose(driver);
    return devices;
}

}  // namespace

RuntimeInfo runtimeInfo() {
    RuntimeInfo info;
    info.segscopeVersion = segscopeVersion();
    info.torchVersion = TORCH_VERSION;
    info.opencvVersion = CV_VERSION;
    info.intraOpThreads = at::get_num_threads();
    info.hardwareThreads = static_cast<int>(std::thread::hardware_concurrency());
    info.cudaBackend = cudaBackendStatus();
    info.cudaAvailable = torch::cuda::is_available();
    if (info.cudaAvailable) info.cudaDevices = queryDriverDevices(static_cast<int>(torch::cuda::device_count()));
    return info;
}

std::string formatRuntimeInfo(const RuntimeInfo& info) {
    std::ostringstream out;
    out << "SegScope " << info.segscopeVersion << "\n"
        << "LibTorch " << info.torchVersion << "\n"
        << "OpenCV " << info.opencvVersion << "\n"
        << "CPU threads: " << info.intraOpThreads << " (of " << info.hardwareThreads << " hardware threads)\n";
    const CudaBackendStatus& backend = info.cudaBackend;
    out << "CUDA backend: ";
    switch (backend.state) {
        case CudaBackendState::Loaded:
            out << "loaded (" << backend.libraryPath << ")\n";
            break;
        case CudaBackendState::AlreadyLoaded:
            out << "already loaded (" << backend.libraryPath << ")\n";
            break;
        case CudaBackendState::NotInstalled:
            out << "not installed (no " << backend.libraryPath << ")\n";
            break;
        case CudaBackendState::Failed:
            out << "failed to load " << backend.libraryPath << ": " << backend.error << "\n";
            break;
    }
    if (info.cudaDevices.empty()) {
        out << "CUDA devices: none\n";
    } else {
        out << "CUDA devices: " << info.cudaDevices.size() << "\n";
        for (const auto& d : info.cudaDevices)
            out << "  cuda:" << d.index << " " << d.name << " (" << d.totalMemoryBytes / (1024 * 1024) << " MiB)\n";
    }
    return out.str();
}

void preferPassiveOpenMpWait(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): carry on with the active policy rather than fail.
}

int maxIntraOpThreads() {
    const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return std::clamp(4 * hardware, 16, 1024);
}

void setIntraOpThreads(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(std::min(threads, maxIntraOpThreads()));
}

c10::Device resolveDevice(const std::string& name) {
    const bool cuda = torch::cuda::is_available();
    if (name == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    if (name == "cpu") return torch::Device(torch::kCPU);
    if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
        int index = 0;
        if (name.size() > 5) {
            try {
                std::size_t used = 0;
                index = std::stoi(name.substr(5), &used);
                if (used != name.size() - 5 || index < 0) throw std::invalid_argument(name);
            } catch (const std::exception&) {
                throw Error("runtime.device: '" + name + "' is not a device; use auto, cpu, cuda or cuda:N");
            }
        }
        if (!cuda) throw Error("runtime.device: '" + name + "' requested but this machine has no CUDA device");
        const auto count = static_cast<int>(torch::cuda::device_count());
        if (index >= count)
            throw Error("runtime.device: '" + name + "' requested but this machine has " + std::to_string(count) +
                        " CUDA device(s)");
        return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    throw Error("runtime.device: '" + name + "' is not a device; use auto, cpu, cuda or cuda:N");
}

std::vector<std::string> availableDevices() {
    std::vector<std::string> devices = {"cpu"};
    if (torch::cuda::is_available())
        for (int i = 0; i < int(torch::cuda::device_count()); ++i) devices.push_back("cuda:" + std::to_string(i));
    return devices;
}

std::string isoNow() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

}  // namespace segscope::core
