// File: server/data/random.h — a seeded random source whose draws are
// byte-identical on every platform: std::mt19937_64 is fully specified, but
// std:: distributions are not, so uniform and normal draws are computed here.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace segserve::data {

// SplitMix64 finaliser: turns (seed, index, ...) combinations into independent
// seeds.
inline uint64_t MixSeed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
inline uint64_t MixSeed(uint64_t a, uint64_t b) {
  return MixSeed(MixSeed(a) ^ (b * 0xD6E8FEB86659FD93ull));
}
inline uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c) { return MixSeed(MixSeed(a, b), c); }

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}

  uint64_t Next() { return gen_(); }
  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [lo, hi] (inclusive); lo when hi <= lo.
  int UniformInt(int lo, int hi) {
    if (hi <= lo) return lo;
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
    return lo + static_cast<int>(gen_() % span);
  }
  bool Bernoulli(double p) { return Uniform() < p; }
  // Standard normal by Box-Muller (one draw per call, no cached state).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double Normal(double mean, double stddev) { return mean + stddev * Normal(); }

 private:
  std::mt19937_64 gen_;
};

}  // namespace segserve::data
