// File: server/app/drift_observer.h — attaches live drift monitoring to the serving core:
// a BatchObserver that feeds every executed interactive batch's tap channel means to the
// DriftMonitor and hands its per-item shift scores back. Lives in the composition root so
// that inference and susceptibility do not depend on each other.
#pragma once

#include <vector>

#include "server/inference/executor.h"
#include "server/susceptibility/drift_monitor.h"

namespace segserve::app {

class DriftObserver : public inference::BatchObserver {
 public:
  explicit DriftObserver(susceptibility::DriftMonitor& drift) : drift_(drift) {}

  bool WantsTapMeans(const registry::LoadedModel& model) const override {
    return drift_.HasReference(model.key());
  }
  std::vector<double> OnBatch(const registry::LoadedModel& model,
                              const model_input::TapMeans& means) override {
    return drift_.ObserveBatch(model.key(), means);
  }

 private:
  susceptibility::DriftMonitor& drift_;
};

}  // namespace segserve::app
