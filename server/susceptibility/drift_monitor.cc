#include "server/susceptibility/drift_monitor.h"

#include "server/model_input/reference_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "prometheus/registry.h"
#include "server/common/log.h"

namespace segserve::susceptibility {
namespace {

using nlohmann::json;

// One reference layer with its sliding window. Bins: 0 = below the reference minimum,
// 1..bins = the reference histogram, bins + 1 = above the maximum (reference mass 0, so
// values outside the training range push the distance towards 1).
struct LayerWindow {
  std::string name;
  int channels = 0;
  int bins = 0;   // reference bins
  int slots = 0;  // bins + 2
  std::vector<float> lo, inv_width, min, max, sigma;
  std::vector<double> sqrt_p;     // [c * slots + b], reference probabilities' square roots
  std::vector<int32_t> counts;    // [c * slots + b], window counts
  std::vector<double> bc;         // per channel: sum_b sqrt_p * sqrt(count)
  std::vector<uint16_t> ring;     // [slot * channels + c], bin of each image in the window
  int size = 0;                   // images in the window
  int pos = 0;                    // next ring slot
  int64_t adds = 0;
  double distance = 0;            // mean Hellinger over channels
  prometheus::Gauge* gauge = nullptr;

  int Bin(int c, float x) const {
    if (!(x >= min[c])) return 0;  // NaN counts as outside
    if (x > max[c]) return slots - 1;
    const int b = static_cast<int>((x - lo[c]) * inv_width[c]);
    return 1 + std::clamp(b, 0, bins - 1);
  }
};

}  // namespace

struct DriftMonitor::ModelState {
  absl::Mutex mu;
  std::vector<LayerWindow> layers ABSL_GUARDED_BY(mu);
  int score_layer = 0;
  int window = 256;
  std::vector<double> sqrt_int;  // sqrt(0..window)
  prometheus::Gauge* window_gauge = nullptr;
};

DriftMonitor::DriftMonitor(metrics::Metrics& metrics, DriftOptions options)
    : options_(std::move(options)),
      hellinger_(prometheus::BuildGauge()
                     .Name("segserve_domain_shift_hellinger")
                     .Help("Hellinger distance (mean over channels, 0..1) between the per-channel "
                           "means of a model layer over the last requests and the model's "
                           "training reference")
                     .Register(*metrics.registry())),
      window_images_(prometheus::BuildGauge()
                         .Name("segserve_domain_shift_window_images")
                         .Help("Requests in the domain-shift window of a model (the Hellinger "
                               "gauges are biased upwards until it is full)")
                         .Register(*metrics.registry())) {}

DriftMonitor::~DriftMonitor() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, state] : models_) {
    absl::MutexLock l(&state->mu);
    for (LayerWindow& layer : state->layers) hellinger_.Remove(layer.gauge);
    window_images_.Remove(state->window_gauge);
  }
}

absl::Status DriftMonitor::SetReference(const std::string& model_key, const json& ref) {
  // The schema is the model-input module's; it validates and names bad fields.
  absl::StatusOr<model_input::ReferenceStats> stats = model_input::ReferenceStatsFromJson(ref);
  if (!stats.ok()) return stats.status();
  const int bins = stats->bins;
  const int window = std::clamp(options_.window, 1, 65535);
  auto state = std::make_shared<ModelState>();
  state->window = window;
  state->sqrt_int.resize(window + 1);
  for (int i = 0; i <= window; ++i) state->sqrt_int[i] = std::sqrt(static_cast<double>(i));
  std::vector<LayerWindow> layers;
  for (const model_input::LayerReferenceStats& l : stats->layers) {
    LayerWindow w;
    w.name = l.name;
    w.channels = l.channels;
    w.bins = bins;
    w.slots = bins + 2;
    w.min = l.min;
    w.max = l.max;
    w.lo = l.min;
    w.sigma.resize(w.channels);
    w.inv_width.resize(w.channels);
    w.sqrt_p.assign(static_cast<size_t>(w.channels) * w.slots, 0.0);
    for (int c = 0; c < w.channels; ++c) {
      const double width = (static_cast<double>(w.max[c]) - w.min[c]) / bins;
      w.inv_width[c] = width > 0 ? static_cast<float>(1.0 / width) : 0.f;
      w.sigma[c] = std::max(l.std[c], 1e-6f);
      double total = 0;
      for (double v : l.hist[c]) total += v;
      if (total <= 0) continue;
      for (int b = 0; b < bins; ++b) {
        w.sqrt_p[static_cast<size_t>(c) * w.slots + 1 + b] = std::sqrt(l.hist[c][b] / total);
      }
    }
    w.counts.assign(static_cast<size_t>(w.channels) * w.slots, 0);
    w.bc.assign(w.channels, 0.0);
    w.ring.assign(static_cast<size_t>(window) * w.channels, 0);
    w.gauge = &hellinger_.Add({{"model", model_key}, {"layer", w.name}});
    w.gauge->Set(0);
    layers.push_back(std::move(w));
  }
  if (layers.empty()) return absl::InvalidArgumentError("reference_stats.layers: empty");
  state->score_layer = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].name == options_.score_layer) state->score_layer = static_cast<int>(i);
  }
  state->window_gauge = &window_images_.Add({{"model", model_key}});
  state->window_gauge->Set(0);
  {
    absl::MutexLock l(&state->mu);
    state->layers = std::move(layers);
  }
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model_key);
  if (it != models_.end()) {
    // The gauges are keyed by labels: the new state re-added the same ones; drop only layers
    // the new reference no longer has.
    absl::MutexLock old(&it->second->mu);
    absl::MutexLock now(&state->mu);
    for (LayerWindow& o : it->second->layers) {
      const bool kept = std::any_of(state->layers.begin(), state->layers.end(),
                                    [&](const LayerWindow& n) { return n.gauge == o.gauge; });
      if (!kept) hellinger_.Remove(o.gauge);
    }
  }
  models_[model_key] = std::move(state);
  return absl::OkStatus();
}

void DriftMonitor::RemoveModel(const std::string& model_key) {
  std::shared_ptr<ModelState> state;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model_key);
    if (it == models_.end()) return;
    state = std::move(it->second);
    models_.erase(it);
  }
  absl::MutexLock l(&state->mu);
  for (LayerWindow& layer : state->layers) hellinger_.Remove(layer.gauge);
  window_images_.Remove(state->window_gauge);
  state->layers.clear();
}

std::shared_ptr<DriftMonitor::ModelState> DriftMonitor::Find(const std::string& key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(key);
  return it == models_.end() ? nullptr : it->second;
}

bool DriftMonitor::HasReference(const std::string& model_key) const {
  return Find(model_key) != nullptr;
}

double DriftMonitor::Observe(const std::string& model_key, const TapMeans& batch, int image) {
  std::shared_ptr<ModelState> state = Find(model_key);
  if (!state) return kNoReference;
  absl::MutexLock lock(&state->mu);
  if (state->layers.empty()) return kNoReference;  // removed meanwhile
  const std::vector<double>& sq = state->sqrt_int;
  double score = 0;
  int window_size = 0;
  for (size_t li = 0; li < state->layers.size(); ++li) {
    LayerWindow& w = state->layers[li];
    const LayerMeans* in = nullptr;
    // Taps usually come in reference order; fall back to a search.
    if (li < batch.size() && batch[li].layer == w.name) {
      in = &batch[li];
    } else {
      for (const LayerMeans& l : batch) {
        if (l.layer == w.name) in = &l;
      }
    }
    if (!in || in->channels != w.channels || image < 0 || image >= in->images) continue;
    const float* x = in->image(image);
    uint16_t* slot = &w.ring[static_cast<size_t>(w.pos) * w.channels];
    const bool evict = w.size == state->window;
    for (int c = 0; c < w.channels; ++c) {
      int32_t* counts = &w.counts[static_cast<size_t>(c) * w.slots];
      const double* sp = &w.sqrt_p[static_cast<size_t>(c) * w.slots];
      if (evict) {
        const int old = slot[c];
        const int32_t n = counts[old]--;
        w.bc[c] += sp[old] * (sq[n - 1] - sq[n]);
      }
      const int b = w.Bin(c, x[c]);
      const int32_t n = counts[b]++;
      w.bc[c] += sp[b] * (sq[n + 1] - sq[n]);
      slot[c] = static_cast<uint16_t>(b);
    }
    if (!evict) ++w.size;
    w.pos = (w.pos + 1) % state->window;
    // The running sums drift by rounding; recompute them exactly once per window.
    if (++w.adds % state->window == 0) {
      for (int c = 0; c < w.channels; ++c) {
        double s = 0;
        for (int b = 0; b < w.slots; ++b) {
          const size_t k = static_cast<size_t>(c) * w.slots + b;
          s += w.sqrt_p[k] * sq[w.counts[k]];
        }
        w.bc[c] = s;
      }
    }
    const double inv_sqrt_n = 1.0 / sq[w.size];
    double sum = 0;
    for (int c = 0; c < w.channels; ++c) sum += std::sqrt(std::max(0.0, 1.0 - w.bc[c] * inv_sqrt_n));
    w.distance = sum / w.channels;
    w.gauge->Set(w.distance);
    window_size = std::max(window_size, w.size);

    if (static_cast<int>(li) == state->score_layer) {
      double s = 0;
      for (int c = 0; c < w.channels; ++c) {
        const float v = x[c];
        const double d = v < w.min[c] ? w.min[c] - v : (v > w.max[c] ? v - w.max[c] : 0.0);
        s += std::isnan(v) ? 1.0 : 1.0 - std::exp(-d / w.sigma[c]);
      }
      score = s / w.channels;
    }
  }
  state->window_gauge->Set(window_size);
  return score;
}

std::vector<double> DriftMonitor::ObserveBatch(const std::string& model_key,
                                               const TapMeans& batch) {
  std::vector<double> out;
  const int n = batch.empty() ? 0 : batch.front().images;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(Observe(model_key, batch, i));
  return out;
}

std::vector<std::pair<std::string, double>> DriftMonitor::LayerDistances(
    const std::string& model_key) const {
  std::vector<std::pair<std::string, double>> out;
  std::shared_ptr<ModelState> state = Find(model_key);
  if (!state) return out;
  absl::MutexLock lock(&state->mu);
  for (const LayerWindow& w : state->layers) out.emplace_back(w.name, w.distance);
  return out;
}

int DriftMonitor::WindowImages(const std::string& model_key) const {
  std::shared_ptr<ModelState> state = Find(model_key);
  if (!state) return 0;
  absl::MutexLock lock(&state->mu);
  int n = 0;
  for (const LayerWindow& w : state->layers) n = std::max(n, w.size);
  return n;
}

}  // namespace segserve::susceptibility
