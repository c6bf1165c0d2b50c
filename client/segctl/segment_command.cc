// `segctl segment`: segments image files through SegmentStream and writes the masks (and
// optional colour overlays) to a folder.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/commands.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/common/file_util.h"
#include "server/data/codec.h"
#include "server/data/synthetic.h"

namespace segserve::segctl {
namespace {
namespace fs = std::filesystem;

bool IsImageFile(const fs::path& path) {
  const std::string ext = absl::AsciiStrToLower(path.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff";
}

absl::StatusOr<std::vector<std::string>> CollectFiles(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(input, ec)) {
        if (entry.is_regular_file() && IsImageFile(entry.path())) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(input, ec)) {
      files.push_back(input);
    } else {
      return absl::NotFoundError(absl::StrCat("no such file or folder: ", input));
    }
  }
  if (files.empty()) return absl::InvalidArgumentError("no image files given");
  return files;
}

void DrawProgress(size_t done, size_t total) {
  if (!isatty(STDERR_FILENO)) return;
  const int width = 30;
  const int filled = total == 0 ? width : static_cast<int>(width * done / total);
  std::cerr << "\r[" << std::string(filled, '=') << std::string(width - filled, ' ') << "] "
            << done << "/" << total << std::flush;
  if (done == total) std::cerr << "\n";
}

struct Options {
  std::string model, out = "masks";
  bool overlay = false;
  int tile_size = 0;
  double tile_overlap = 0;
  std::vector<std::string> inputs;
};

int Segment(const Options& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  auto files = CollectFiles(o.inputs);
  if (!files.ok()) return ReportError(err, files.status());
  const std::string& out_dir = o.out;
  if (absl::Status s = common::MakeDirectories(out_dir); !s.ok()) return ReportError(err, s);
  const bool overlay = o.overlay;
  std::string model_name = o.model;
  int64_t model_version = 0;
  if (auto colon = model_name.rfind(':'); colon != std::string::npos) {
    // Checked while parsing.
    if (!absl::SimpleAtoi(model_name.substr(colon + 1), &model_version)) model_version = 0;
    model_name.resize(colon);
  }

  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto stub = v1::Segmentation::NewStub((*client)->channel());
  auto context = (*client)->NewStreamContext();
  auto stream = stub->SegmentStream(context.get());
  std::thread writer([&] {
    for (size_t i = 0; i < files->size(); ++i) {
      v1::SegmentRequest request;
      request.set_request_id(std::to_string(i));
      request.mutable_model()->set_name(model_name);
      request.mutable_model()->set_version(model_version);
      request.mutable_options()->set_tile_size(o.tile_size);
      request.mutable_options()->set_tile_overlap(static_cast<float>(o.tile_overlap));
      auto bytes = common::ReadFile((*files)[i]);
      if (bytes.ok()) request.mutable_image()->set_encoded(std::move(*bytes));
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });

  size_t done = 0, failed = 0;
  v1::SegmentResponse response;
  while (stream->Read(&response)) {
    size_t index = 0;
    if (!absl::SimpleAtoi(response.request_id(), &index)) index = files->size() - 1;
    const std::string& file = (*files)[std::min(index, files->size() - 1)];
    const std::string stem = fs::path(file).stem().string();
    ++done;
    if (response.has_error()) {
      ++failed;
      err << "\n" << file << ": " << absl::StatusCodeToString(static_cast<absl::StatusCode>(
                                           response.error().code()))
          << ": " << response.error().message() << "\n";
      DrawProgress(done, files->size());
      continue;
    }
    const std::string mask_path = out_dir + "/" + stem + ".png";
    absl::Status written = common::WriteFileAtomically(mask_path, response.mask());
    if (written.ok() && overlay) {
      auto image = data::ReadImageFile(file);
      auto mask = data::DecodeMask(response.mask());
      if (image.ok() && mask.ok()) {
        written = data::WriteImageFile(out_dir + "/" + stem + "_overlay.png",
                                       data::RenderOverlay(*image, *mask));
      } else {
        written = image.ok() ? mask.status() : image.status();
      }
    }
    if (!written.ok()) {
      ++failed;
      err << "\n" << file << ": " << written.message() << "\n";
    }
    out << file << ":";
    for (int c = 0; c < response.class_fractions_size(); ++c) {
      out << " class" << c << "=" << std::fixed << std::setprecision(4)
          << response.class_fractions(c);
    }
    out << "  (" << response.model_name() << ":" << response.model_version() << ", "
        << std::setprecision(1) << response.timings().total_seconds() * 1000 << " ms)\n";
    DrawProgress(done, files->size());
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  out << done - failed << " of " << files->size() << " images segmented into " << out_dir << "\n";
  return failed == 0 && done == files->size() ? kExitOk : kExitError;
}

// MODEL, MODEL:VERSION or an alias.
const CLI::Validator& ModelValidator() {
  static const CLI::Validator validator(
      [](std::string& value) -> std::string {
        const auto colon = value.rfind(':');
        int64_t version = 0;
        if (colon == 0 || value.empty()) return "needs a model name";
        if (colon != std::string::npos &&
            (!absl::SimpleAtoi(value.substr(colon + 1), &version) || version < 1)) {
          return "bad version in '" + value + "'";
        }
        return std::string();
      },
      "MODEL[:VERSION]", "model");
  return validator;
}

}  // namespace

void AddSegmentCommand(CLI::App& segctl, Invocation& invocation) {
  auto o = std::make_shared<Options>();
  CLI::App* segment =
      segctl.add_subcommand("segment", "segment image files; write masks and overlays");
  segment->add_option("--model", o->model, "model name, name:version or alias")
      ->required()
      ->check(ModelValidator());
  segment->add_option("--out", o->out, "folder for the masks")->capture_default_str();
  segment->add_flag("--overlay", o->overlay, "also write DIR/<name>_overlay.png");
  segment->add_option("--tile-size", o->tile_size, "tile size: 0 (server default) or a multiple of 32 in 64..2048")
      ->check(CLI::Range(0, 2048))
      ->capture_default_str();
  segment->add_option("--tile-overlap", o->tile_overlap, "tile overlap fraction, 0..0.75")
      ->check(CLI::Range(0.0, 0.75))
      ->capture_default_str();
  segment->add_option("images", o->inputs, "PNG/JPEG/TIFF files or folders of them")
      ->required();
  SetExamples(segment,
              {"segctl segment --model l1-pruned --out masks --overlay smears/images",
               "segctl segment --model baseline:2 --tile-size 256 big.tif"},
              "Sends all images through one SegmentStream; writes DIR/<name>.png (class\n"
              "ids) and prints the class fractions of each image.");
  SetAction(segment, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Segment(*o, global, out, err);
            });
}

}  // namespace segserve::segctl
