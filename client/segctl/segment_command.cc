// `segctl segment`: segments image files through SegmentStream and writes the masks (and
// optional colour overlays) to a folder; or, with --nifti, every slice of an MR volume,
// assembled into a label volume written with the input's header.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/segctl/commands.h"
#include "segserve/v1/models.grpc.pb.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/common/file_util.h"
#include "server/data/codec.h"
#include "server/data/nifti.h"
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
  std::cerr << "\r[" << std::string(filled, '=') << std::string(width - filled, ' ') << "] " << done
            << "/" << total << std::flush;
  if (done == total) std::cerr << "\n";
}

struct Options {
  std::string model, out = "masks";
  bool overlay = false;
  int tile_size = 0;
  double tile_overlap = 0;
  std::vector<std::string> inputs;
  // --nifti: one volume in, one label volume out.
  std::string nifti;
  int axis = 2;
  std::string normalise = "percentile";
  std::string label_type = "uint8";
};

void SplitModelRef(const std::string& ref, std::string& name, int64_t& version) {
  name = ref;
  version = 0;
  if (auto colon = name.rfind(':'); colon != std::string::npos) {
    // Checked while parsing.
    if (!absl::SimpleAtoi(name.substr(colon + 1), &version)) version = 0;
    name.resize(colon);
  }
}

// The served model must take one channel: the server would otherwise replicate a gray
// slice into RGB without complaint. Returns the resolved model (name and version), which
// every slice then names, so all slices of a volume go through the same version.
absl::StatusOr<v1::ModelInfo> OneChannelModel(client::Client& client, const std::string& name,
                                              int64_t version) {
  auto stub = v1::Models::NewStub(client.channel());
  auto context = client.NewContext();
  v1::GetModelRequest request;
  request.mutable_model()->set_name(name);
  request.mutable_model()->set_version(version);
  v1::ModelInfo info;
  grpc::Status status = stub->Get(context.get(), request, &info);
  if (!status.ok()) return client::FromGrpcStatus(status);
  if (info.config().in_channels() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", info.name(), ":", info.version(), " takes ", info.config().in_channels(),
        " input channels; --nifti sends 1-channel MR slices and needs a 1-channel model"));
  }
  return info;
}

int SegmentNifti(const Options& o, const GlobalOptions& global, std::ostream& out,
                 std::ostream& err) {
  const std::string lower_out = absl::AsciiStrToLower(o.out);
  if (!absl::EndsWith(lower_out, ".nii") && !absl::EndsWith(lower_out, ".nii.gz")) {
    return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                "--out: with --nifti, a .nii or .nii.gz file, got '", o.out, "'")));
  }
  auto method = data::ParseMrNormalization(o.normalise);
  if (!method.ok()) return ReportError(err, method.status());
  auto volume = data::ReadNifti(o.nifti);
  if (!volume.ok()) return ReportError(err, volume.status());
  data::NormalizeIntensities(volume->voxels, {*method});

  std::string model_name;
  int64_t model_version = 0;
  SplitModelRef(o.model, model_name, model_version);
  auto client = client::Client::Create(global.client);
  if (!client.ok()) return ReportError(err, client.status());
  auto model = OneChannelModel(**client, model_name, model_version);
  if (!model.ok()) return ReportError(err, model.status());

  const int64_t slices = data::NumSlices(volume->dims, o.axis);
  auto stub = v1::Segmentation::NewStub((*client)->channel());
  auto context = (*client)->NewStreamContext();
  auto stream = stub->SegmentStream(context.get());
  std::thread writer([&] {
    for (int64_t i = 0; i < slices; ++i) {
      const data::Image slice = data::ExtractSlice(volume->voxels, volume->dims, o.axis, i);
      v1::SegmentRequest request;
      request.set_request_id(std::to_string(i));
      request.mutable_model()->set_name(model->name());
      request.mutable_model()->set_version(model->version());
      request.mutable_options()->set_tile_size(o.tile_size);
      request.mutable_options()->set_tile_overlap(static_cast<float>(o.tile_overlap));
      request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
      auto* raw = request.mutable_image()->mutable_raw();
      raw->set_height(slice.height);
      raw->set_width(slice.width);
      raw->set_channels(1);
      raw->set_dtype(v1::DTYPE_FLOAT32);
      raw->set_data(slice.bytes.data(), slice.bytes.size());
      request.mutable_image()->set_label(absl::StrCat(o.nifti, "#", i));
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });

  std::vector<uint8_t> ids(static_cast<size_t>(volume->num_voxels()), 0);
  std::vector<bool> seen(static_cast<size_t>(slices), false);
  absl::Status failure;
  int64_t done = 0;
  v1::SegmentResponse response;
  while (stream->Read(&response)) {
    int64_t index = -1;
    if (!absl::SimpleAtoi(response.request_id(), &index) || index < 0 || index >= slices ||
        seen[index]) {
      if (failure.ok()) {
        failure = absl::InternalError(
            absl::StrCat("unexpected response id '", response.request_id(), "'"));
      }
      continue;
    }
    seen[index] = true;
    ++done;
    DrawProgress(done, slices);
    if (response.has_error()) {
      if (failure.ok()) {
        failure = absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                               absl::StrCat("slice ", index, ": ", response.error().message()));
      }
      continue;
    }
    data::Mask mask;
    mask.height = response.height();
    mask.width = response.width();
    mask.ids.assign(response.mask().begin(), response.mask().end());
    if (mask.ids.size() != mask.num_pixels()) {
      if (failure.ok()) failure = absl::InternalError(absl::StrCat("slice ", index, ": bad mask"));
      continue;
    }
    if (absl::Status s = data::InsertSlice(mask, volume->dims, o.axis, index, ids); !s.ok()) {
      if (failure.ok()) failure = s;
    }
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return ReportError(err, client::FromGrpcStatus(status));
  if (!failure.ok()) return ReportError(err, failure);
  if (done != slices) {
    return ReportError(err, absl::UnavailableError(absl::StrCat("the server answered ", done,
                                                                " of ", slices, " slices")));
  }
  const data::LabelType type =
      o.label_type == "int16" ? data::LabelType::kInt16 : data::LabelType::kUInt8;
  if (absl::Status s = data::WriteNiftiLabels(o.out, *volume, ids, type); !s.ok()) {
    return ReportError(err, s);
  }
  std::vector<int64_t> counts(256, 0);
  for (uint8_t id : ids) ++counts[id];
  out << o.nifti << ": " << volume->dims[0] << "x" << volume->dims[1] << "x" << volume->dims[2]
      << ", " << slices << " slices along axis " << o.axis << " (" << o.normalise << ") -> "
      << o.out << "  (" << model->name() << ":" << model->version() << ")\n";
  for (int c = 0; c < 256; ++c) {
    if (counts[c] == 0) continue;
    out << "  class" << c << " " << std::fixed << std::setprecision(4)
        << static_cast<double>(counts[c]) / static_cast<double>(ids.size()) << "\n";
  }
  return kExitOk;
}

int Segment(const Options& o, const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  if (!o.nifti.empty()) {
    if (!o.inputs.empty() || o.overlay) {
      return ReportError(
          err, absl::InvalidArgumentError("--nifti takes no image files and no --overlay"));
    }
    return SegmentNifti(o, global, out, err);
  }
  auto files = CollectFiles(o.inputs);
  if (!files.ok()) return ReportError(err, files.status());
  const std::string& out_dir = o.out;
  if (absl::Status s = common::MakeDirectories(out_dir); !s.ok()) return ReportError(err, s);
  const bool overlay = o.overlay;
  std::string model_name;
  int64_t model_version = 0;
  SplitModelRef(o.model, model_name, model_version);

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
      err << "\n"
          << file << ": "
          << absl::StatusCodeToString(static_cast<absl::StatusCode>(response.error().code()))
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
    out << "  (" << response.model_name() << ":" << response.model_version() << " "
        << (response.precision().empty() ? "fp32" : response.precision()) << ", "
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
  segment
      ->add_option("--out", o->out,
                   "folder for the masks (with --nifti: the label volume, .nii or .nii.gz)")
      ->capture_default_str();
  segment->add_flag("--overlay", o->overlay, "also write DIR/<name>_overlay.png");
  segment
      ->add_option("--tile-size", o->tile_size,
                   "tile size: 0 (server default) or a multiple of 32 in 64..2048")
      ->check(CLI::Range(0, 2048))
      ->capture_default_str();
  segment->add_option("--tile-overlap", o->tile_overlap, "tile overlap fraction, 0..0.75")
      ->check(CLI::Range(0.0, 0.75))
      ->capture_default_str();
  segment->add_option("images", o->inputs, "PNG/JPEG/TIFF files or folders of them");
  segment->add_option("--nifti", o->nifti,
                      "an MR volume (.nii or .nii.gz, NIfTI-1/2) to segment slice by slice "
                      "with a 1-channel model");
  segment->add_option("--axis", o->axis, "with --nifti: the axis to slice along (0, 1, 2)")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  segment
      ->add_option("--normalise", o->normalise, "with --nifti: per-volume intensity normalisation")
      ->check(CLI::IsMember({"percentile", "zscore"}))
      ->capture_default_str();
  segment->add_option("--label-type", o->label_type, "with --nifti: label volume datatype")
      ->check(CLI::IsMember({"uint8", "int16"}))
      ->capture_default_str();
  SetExamples(segment,
              {"segctl segment --model l1-pruned --out masks --overlay smears/images",
               "segctl segment --model baseline:2 --tile-size 256 big.tif",
               "segctl segment --model mr-unet --nifti case_0000.nii.gz --out case_mask.nii.gz"},
              "Sends all images through one SegmentStream; writes DIR/<name>.png (class\n"
              "ids) and prints the class fractions of each image.\n"
              "With --nifti, every slice of the volume (normalised per volume: percentile\n"
              "clips to the 0.5/99.5th percentiles and scales to [0, 1]; zscore subtracts\n"
              "the mean and divides by the std) goes through the stream as a 1-channel\n"
              "float tensor; the masks are assembled into a label volume written with the\n"
              "input's header, affine and orientation (docs/datasets.md, MR volumes).");
  SetAction(segment, invocation,
            [o](const GlobalOptions& global, std::ostream& out, std::ostream& err) {
              return Segment(*o, global, out, err);
            });
}

}  // namespace segserve::segctl
