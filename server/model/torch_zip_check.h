// File: server/model/torch_zip_check.h — a structural check of a torch.save zip archive
// before LibTorch's PyTorchStreamReader sees it. That reader throws from its constructor
// (after miniz allocated its state, which then leaks) on a bad folder layout or version
// record, and trusts the directory's offsets; this refuses such files first.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace segserve::model {

// OK when every directory entry lies inside the archive with a valid local header, all
// entries share one "<prefix>/" folder, and a stored version record holds a supported
// version (1..10). Zip64 archives pass (the bounded reader guards them). InvalidArgument
// otherwise.
absl::Status CheckTorchZipDirectory(const std::string& bytes);

}  // namespace segserve::model
