#include "server/data/volume_cache.h"

namespace segserve::data {

absl::StatusOr<std::shared_ptr<const DecodedVolume>> VolumeCache::Get(int key,
                                                                      const Decoder &decode) {
  if (max_bytes_ <= 0) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.misses;
    }
    return decode();
  }
  {
    absl::MutexLock lock(&mu_);
    while (true) {
      auto it = entries_.find(key);
      if (it == entries_.end()) break;
      if (it->second.volume != nullptr) {
        ++stats_.hits;
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return it->second.volume;
      }
      decoded_.Wait(&mu_);  // another thread is decoding it
    }
    entries_[key];  // claimed: others wait instead of decoding it too
    ++stats_.misses;
  }
  absl::StatusOr<std::shared_ptr<const DecodedVolume>> volume = decode();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (!volume.ok() || *volume == nullptr || (*volume)->bytes() > max_bytes_) {
    entries_.erase(it);  // waiters decode it themselves (and see the same error)
  } else {
    it->second.volume = *volume;
    lru_.push_front(key);
    it->second.lru = lru_.begin();
    stats_.bytes += (*volume)->bytes();
    EvictLocked();
  }
  decoded_.SignalAll();
  return volume;
}

void VolumeCache::EvictLocked() {
  while (stats_.bytes > max_bytes_ && !lru_.empty()) {
    const int victim = lru_.back();
    lru_.pop_back();
    auto it = entries_.find(victim);
    stats_.bytes -= it->second.volume->bytes();
    entries_.erase(it);
    ++stats_.evictions;
  }
}

VolumeCache::Stats VolumeCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace segserve::data
