// File: server/inference/torch_batch_runner.h — the production BatchRunner: the model's
// LibTorch forward pass (with feature taps and their channel means when asked), logits
// handed back as one CPU tensor that the items' LogitsViews share.
#pragma once

#include "server/inference/executor.h"

namespace segserve::inference {

class TorchBatchRunner : public BatchRunner {
 public:
  absl::StatusOr<BatchOutput> Run(const BatchInput& input) override;
};

}  // namespace segserve::inference
