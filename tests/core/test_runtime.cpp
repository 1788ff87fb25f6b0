#include "segscope/core/runtime.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <string>

using segscope::core::CudaBackendState;
using segscope::core::CudaBackendStatus;
using segscope::core::RuntimeInfo;

namespace {

// The folder of the libtorch_cpu.so in this process, found independently of the core.
std::filesystem::path torchCpuFolder() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&at::detail::getCUDAHooks), &info) == 0 || info.dli_fname == nullptr) return {};
    return std::filesystem::canonical(std::filesystem::path(info.dli_fname).parent_path());
}

bool mappedInThisProcess(const std::string& fileName) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line))
        if (line.size() >= fileName.size() &&
            line.compare(line.size() - fileName.size(), fileName.size(), fileName) == 0)
            return true;
    return false;
}

RuntimeInfo infoWith(CudaBackendStatus backend) {
    RuntimeInfo info;
    info.segscopeVersion = "0.1.0";
    info.torchVersion = "2.8.0";
    info.opencvVersion = "4.6.0";
    info.intraOpThreads = 2;
    info.hardwareThreads = 4;
    info.cudaBackend = std::move(backend);
    return info;
}

}  // namespace

TEST(Runtime, CudaBackendIsLookedForNextToLibtorchCpu) {
    const auto folder = torchCpuFolder();
    ASSERT_FALSE(folder.empty());
    const CudaBackendStatus& status = segscope::core::cudaBackendStatus();
    const auto expected = folder / "libtorch_cuda.so";
    EXPECT_EQ(status.libraryPath, expected.string());
    if (std::filesystem::exists(expected)) {
        // The CUDA wheel of the build tree: the backend is loaded by the core's initialiser.
        EXPECT_EQ(status.state, CudaBackendState::Loaded) << status.error;
        EXPECT_TRUE(status.error.empty()) << status.error;
        EXPECT_TRUE(mappedInThisProcess("/libtorch_cuda.so"));
    } else {
        EXPECT_EQ(status.state, CudaBackendState::NotInstalled);
        EXPECT_FALSE(mappedInThisProcess("/libtorch_cuda.so"));
    }
}

TEST(Runtime, CudaQueriesAgreeAfterTheBackendLoads) {
    // With the backend loaded, LibTorch's CUDA hooks are the real ones; without a GPU or driver
    // they answer "no device" rather than failing.
    const bool available = torch::cuda::is_available();
    EXPECT_EQ(available, torch::cuda::device_count() > 0);
    const RuntimeInfo info = segscope::core::runtimeInfo();
    EXPECT_EQ(info.cudaAvailable, available);
    EXPECT_EQ(info.cudaDevices.size(), torch::cuda::device_count());
    EXPECT_EQ(info.cudaBackend.state, segscope::core::cudaBackendStatus().state);
    if (segscope::core::cudaBackendStatus().state == CudaBackendState::Loaded) {
        EXPECT_EQ(at::detail::getCUDAHooks().hasCUDA(), available);
    }
    // CPU work is unaffected either way.
    EXPECT_EQ(torch::ones({2, 3}).sum().item<float>(), 6.0f);
}

TEST(Runtime, FormatNamesTheCudaBackendState) {
    const auto format = [](CudaBackendState state, const std::string& path, const std::string& error) {
        return segscope::core::formatRuntimeInfo(infoWith({state, path, error}));
    };
    const std::string head = "SegScope 0.1.0\nLibTorch 2.8.0\nOpenCV 4.6.0\nCPU threads: 2 (of 4 hardware threads)\n";
    EXPECT_EQ(format(CudaBackendState::Loaded, "/t/libtorch_cuda.so", ""),
              head + "CUDA backend: loaded (/t/libtorch_cuda.so)\nCUDA devices: none\n");
    EXPECT_EQ(format(CudaBackendState::AlreadyLoaded, "/t/libtorch_cuda.so", ""),
              head + "CUDA backend: already loaded (/t/libtorch_cuda.so)\nCUDA devices: none\n");
    EXPECT_EQ(format(CudaBackendState::NotInstalled, "/t/libtorch_cuda.so", ""),
              head + "CUDA backend: not installed (no /t/libtorch_cuda.so)\nCUDA devices: none\n");
    EXPECT_EQ(format(CudaBackendState::Failed, "/t/libtorch_cuda.so", "libcudnn.so.9: cannot open shared object file"),
              head +
                  "CUDA backend: failed to load /t/libtorch_cuda.so: libcudnn.so.9: cannot open shared object file\n"
                  "CUDA devices: none\n");
}

TEST(Runtime, FormatListsCudaDevices) {
    RuntimeInfo info = infoWith({CudaBackendState::Loaded, "/t/libtorch_cuda.so", ""});
    info.cudaAvailable = true;
    info.cudaDevices.push_back({0, "NVIDIA H100", 80ull * 1024 * 1024 * 1024});
    EXPECT_NE(segscope::core::formatRuntimeInfo(info).find("CUDA devices: 1\n  cuda:0 NVIDIA H100 (81920 MiB)\n"),
              std::string::npos);
}
