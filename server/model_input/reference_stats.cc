#include "server/model_input/reference_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace segserve::model_input {
namespace {

using nlohmann::json;

absl::StatusOr<std::vector<float>> Floats(const json& layer, const char* key, int channels,
                                          const std::string& where) {
  if (!layer.contains(key) || !layer[key].is_array() ||
      layer[key].size() != static_cast<size_t>(channels)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".", key, ": expected ", channels, " numbers"));
  }
  std::vector<float> out;
  out.reserve(channels);
  for (const json& v : layer[key]) {
    if (!v.is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": not a number"));
    }
    out.push_back(v.get<float>());
  }
  return out;
}

}  // namespace

ReferenceStats ReferenceStatsFromSamples(const std::vector<LayerSamples>& layers, int bins) {
  ReferenceStats out;
  out.bins = bins;
  for (const LayerSamples& layer : layers) {
    const size_t n = layer.samples.size();
    out.images = static_cast<int64_t>(n);
    LayerReferenceStats stats;
    stats.name = layer.name;
    stats.channels = layer.channels;
    stats.mean.resize(layer.channels);
    stats.std.resize(layer.channels);
    stats.min.resize(layer.channels);
    stats.max.resize(layer.channels);
    for (int c = 0; c < layer.channels; ++c) {
      double sum = 0, sq = 0;
      float mn = n ? layer.samples[0][c] : 0.f, mx = mn;
      for (const auto& s : layer.samples) {
        sum += s[c];
        sq += static_cast<double>(s[c]) * s[c];
        mn = std::min(mn, s[c]);
        mx = std::max(mx, s[c]);
      }
      const double m = n ? sum / n : 0.0;
      stats.mean[c] = static_cast<float>(m);
      stats.std[c] = static_cast<float>(n ? std::sqrt(std::max(0.0, sq / n - m * m)) : 0.0);
      stats.min[c] = mn;
      stats.max[c] = mx;
      std::vector<double> counts(bins, 0);
      const double width = (static_cast<double>(mx) - mn) / bins;
      for (const auto& s : layer.samples) {
        const int b = width > 0 ? static_cast<int>((s[c] - mn) / width) : 0;
        counts[std::clamp(b, 0, bins - 1)] += 1;
      }
      stats.hist.push_back(std::move(counts));
    }
    out.layers.push_back(std::move(stats));
  }
  return out;
}

json ToJson(const ReferenceStats& stats) {
  json out = {{"bins", stats.bins}, {"images", stats.images}, {"layers", json::array()}};
  for (const LayerReferenceStats& layer : stats.layers) {
    json hist = json::array();
    for (const auto& counts : layer.hist) {
      json row = json::array();
      // Whole counts are written as integers (the schema's historical form).
      for (double v : counts) {
        if (v == std::floor(v) && std::abs(v) < 9e15) {
          row.push_back(static_cast<int64_t>(v));
        } else {
          row.push_back(v);
        }
      }
      hist.push_back(std::move(row));
    }
    out["layers"].push_back({{"name", layer.name},
                             {"channels", layer.channels},
                             {"mean", layer.mean},
                             {"std", layer.std},
                             {"min", layer.min},
                             {"max", layer.max},
                             {"hist", std::move(hist)}});
  }
  return out;
}

absl::StatusOr<ReferenceStats> ReferenceStatsFromJson(const json& ref) {
  if (!ref.is_object() || !ref.contains("bins") || !ref["bins"].is_number_integer() ||
      !ref.contains("layers") || !ref["layers"].is_array()) {
    return absl::InvalidArgumentError("reference_stats: needs integer bins and a layers array");
  }
  ReferenceStats out;
  out.bins = ref["bins"].get<int>();
  if (out.bins < 1 || out.bins > 65000) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference_stats.bins: ", out.bins, " out of range"));
  }
  out.images = ref.value("images", int64_t{0});
  for (size_t i = 0; i < ref["layers"].size(); ++i) {
    const json& l = ref["layers"][i];
    const std::string where = absl::StrCat("reference_stats.layers[", i, "]");
    if (!l.is_object() || !l.contains("name") || !l["name"].is_string() ||
        !l.contains("channels") || !l["channels"].is_number_integer() ||
        l["channels"].get<int>() <= 0) {
      return absl::InvalidArgumentError(where + ": needs name and channels > 0");
    }
    LayerReferenceStats layer;
    layer.name = l["name"].get<std::string>();
    layer.channels = l["channels"].get<int>();
    for (auto [key, field] : {std::pair{"mean", &layer.mean}, std::pair{"std", &layer.std},
                              std::pair{"min", &layer.min}, std::pair{"max", &layer.max}}) {
      // "mean" was optional in the first schema readers; default it to the range's middle.
      if (std::string(key) == "mean" && !l.contains("mean")) continue;
      auto values = Floats(l, key, layer.channels, where);
      if (!values.ok()) return values.status();
      *field = std::move(*values);
    }
    if (layer.mean.empty()) {
      for (int c = 0; c < layer.channels; ++c) layer.mean.push_back((layer.min[c] + layer.max[c]) / 2);
    }
    const json& hist = l.contains("hist") ? l["hist"] : json();
    if (!hist.is_array() || hist.size() != static_cast<size_t>(layer.channels)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".hist: expected ", layer.channels, " histograms"));
    }
    for (int c = 0; c < layer.channels; ++c) {
      const json& h = hist[c];
      if (!h.is_array() || h.size() != static_cast<size_t>(out.bins)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".hist[", c, "]: expected ", out.bins, " counts"));
      }
      std::vector<double> counts;
      counts.reserve(out.bins);
      for (const json& v : h) counts.push_back(v.is_number() ? std::max(0.0, v.get<double>()) : 0.0);
      layer.hist.push_back(std::move(counts));
    }
    out.layers.push_back(std::move(layer));
  }
  if (out.layers.empty()) return absl::InvalidArgumentError("reference_stats.layers: empty");
  return out;
}

}  // namespace segserve::model_input
