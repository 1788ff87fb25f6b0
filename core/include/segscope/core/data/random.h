#pragma once
// Deterministic random numbers that give the same sequence on every platform and standard
// library (std::uniform_*_distribution does not), for data order and augmentation.
#include <cstdint>

namespace segscope::core {

// SplitMix64 step: a good 64-bit mixer for deriving independent seeds.
inline std::uint64_t splitMix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Combines seeds, e.g. mixSeed(seed, epoch, sampleIndex).
inline std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b) {
    return splitMix64(a ^ splitMix64(b));
}
inline std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
    return mixSeed(mixSeed(a, b), c);
}

// xoshiro256** generator with exact, portable helpers.
class Random {
public:
    explicit Random(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& s : state_) s = x = splitMix64(x);
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }
    // Uniform in [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method).
    std::uint64_t below(std::uint64_t n) {
        unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
        auto low = static_cast<std::uint64_t>(m);
        if (low < n) {
            const std::uint64_t threshold = (0 - n) % n;
            while (low < threshold) {
                m = static_cast<unsigned __int128>(next()) * n;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }
    bool chance(double p) { return uniform() < p; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t state_[4];
};

// In-place Fisher-Yates shuffle driven by Random.
template <typename Vector>
void shuffleInPlace(Vector& items, Random& random) {
    for (std::size_t i = items.size(); i > 1; --i) {
        const std::size_t j = static_cast<std::size_t>(random.below(i));
        using std::swap;
        swap(items[i - 1], items[j]);
    }
}

}  // namespace segscope::core
