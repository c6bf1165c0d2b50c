#include "server/api/susceptibility_service.h"

#include <array>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/api/converters.h"
#include "server/api/pool_call.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/data/codec.h"
#include "server/data/dataset.h"
#include "server/data/dataset_index.h"
#include "server/data/image.h"
#include "server/data/shift.h"
#include "server/susceptibility/analysis_runner.h"
#include "server/susceptibility/analyze_datasets.h"

namespace segserve::api {
namespace {

std::string ShiftText(const v1::Shift& shift) {
  const char* kind = shift.kind() == v1::Shift::KIND_BRIGHTNESS   ? "brightness"
                     : shift.kind() == v1::Shift::KIND_CONTRAST   ? "contrast"
                     : shift.kind() == v1::Shift::KIND_SATURATION ? "saturation"
                                                                  : nullptr;
  if (kind == nullptr || shift.level() == 0) return "";
  return absl::StrCat(kind, ":", shift.level());
}

absl::Status CheckCommon(const v1::AnalyzeRequest& request) {
  if (request.models_size() == 0) return absl::InvalidArgumentError("models: at least one");
  if (request.models_size() > susceptibility::kMaxAnalysisModels) {
    return absl::InvalidArgumentError(
        absl::StrCat("models: at most ", susceptibility::kMaxAnalysisModels));
  }
  for (int i = 0; i < request.models_size(); ++i) {
    if (request.models(i).name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("models[", i, "].name: required"));
    }
  }
  return susceptibility::ValidateBins(request.bins());
}

// The job form of a request: data-set references only.
absl::StatusOr<susceptibility::AnalysisSpec> SpecFromProto(const v1::AnalyzeRequest& request) {
  susceptibility::AnalysisSpec spec;
  for (const auto& model : request.models()) spec.models.push_back({model.name(), model.version()});
  for (const auto* set : {&request.source(), &request.target()}) {
    const bool source = set == &request.source();
    const char* field = source ? "source" : "target";
    if (set->images_size() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".images: inline images are for Analyze; a job reads server-side data sets"));
    }
    if (set->dataset().name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".dataset.name: required"));
    }
    susceptibility::DatasetRef& ref = source ? spec.source : spec.target;
    ref.dataset = set->dataset().name();
    ref.split = set->dataset().split().empty() ? "test" : set->dataset().split();
    ref.shift = ShiftText(set->dataset().shift());
    ref.limit = set->limit();
  }
  spec.bins = request.bins();
  // Round trip through the runner's parser: one set of checks, with field names.
  return susceptibility::ParseAnalysisSpec(susceptibility::AnalysisSpecToJson(spec));
}

}  // namespace

void ReportsToProto(const std::vector<susceptibility::SusceptibilityReport>& reports,
                    v1::SusceptibilityReport* out) {
  for (const auto& report : reports) {
    auto* model = out->add_models();
    model->set_model_name(report.model_name);
    model->set_model_version(report.model_version);
    for (const auto& layer : report.layers) {
      auto* l = model->add_layers();
      l->set_layer(layer.layer);
      l->set_channels(layer.channels);
      l->set_mean(layer.mean);
      l->set_median(layer.median);
      l->set_max(layer.max);
      l->set_null_mean(std::isnan(layer.null_mean) ? -1 : layer.null_mean);
      for (double d : layer.per_channel) l->add_per_channel(d);
    }
    out->set_source_images(static_cast<int32_t>(report.source_images));
    out->set_target_images(static_cast<int32_t>(report.target_images));
    out->set_bins(report.bins);
  }
}

SusceptibilityService::SusceptibilityService(SusceptibilityServiceOptions options,
                                             registry::ModelRegistry& registry,
                                             scheduler::Scheduler& scheduler,
                                             common::ThreadPool& analysis_pool,
                                             common::ThreadPool& store_pool, AccessControl& access)
    : options_(std::move(options)),
      registry_(registry),
      scheduler_(scheduler),
      analysis_pool_(analysis_pool),
      store_pool_(store_pool),
      access_(access) {}

grpc::ServerUnaryReactor* SusceptibilityService::Analyze(grpc::CallbackServerContext* context,
                                                         const v1::AnalyzeRequest* request,
                                                         v1::SusceptibilityReport* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kSegmenter); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckCommon(*request); !s.ok()) return FinishUnary(context, s);
  std::vector<std::shared_ptr<const registry::LoadedModel>> models;
  for (const auto& ref : request->models()) {
    auto model = registry_.Resolve(ref.name(), ref.version());
    if (!model.ok()) return FinishUnary(context, model.status());
    models.push_back(*model);
  }
  susceptibility::ImageSet sets[2];
  std::array<std::string, 2> dataset_names;  // empty: inline images
  // Inline images are decoded on the analysis pool, not on this gRPC thread.
  auto inline_images = std::make_shared<std::vector<std::vector<std::string>>>(2);
  for (int s = 0; s < 2; ++s) {
    const v1::ImageSet& in = s == 0 ? request->source() : request->target();
    const char* field = s == 0 ? "source" : "target";
    const int limit = options_.max_analyze_images;
    if (in.images_size() > 0) {
      if (in.images_size() > limit) {
        return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                        field, ".images: at most ", limit,
                                        " inline images per set (--max_analyze_images); use "
                                        "SubmitAnalysis with a server-side data set")));
      }
      for (int i = 0; i < in.images_size(); ++i) {
        auto image = ImageFromProto(in.images(i), options_.max_image_pixels);
        if (!image.ok()) {
          return FinishUnary(context,
                             absl::Status(image.status().code(),
                                          absl::StrCat(field, ".", image.status().message())));
        }
        if (image->decoded.has_value()) {
          sets[s].images.push_back(std::move(*image->decoded));
        } else if (image->raw.has_value()) {
          // A view into the request, which the analysis outlives: copy the checked pixels.
          const data::ImageView& raw = *image->raw;
          data::Image copy = data::Image::Create(raw.height, raw.width, raw.channels, raw.depth);
          std::memcpy(copy.bytes.data(), raw.bytes, copy.bytes.size());
          sets[s].images.push_back(std::move(copy));
        } else {
          sets[s].images.emplace_back();  // decoded on the pool
          (*inline_images)[s].resize(sets[s].images.size());
          (*inline_images)[s].back() = std::move(image->encoded);
        }
      }
    } else {
      if (in.dataset().name().empty()) {
        return FinishUnary(context, absl::InvalidArgumentError(
                                        absl::StrCat(field, ": give images or dataset.name")));
      }
      dataset_names[s] = in.dataset().name();  // resolved on the pool (file system)
      sets[s].split = in.dataset().split().empty() ? "test" : in.dataset().split();
      sets[s].shift = ShiftText(in.dataset().shift());
      const int wanted = in.limit() > 0 ? in.limit() : limit + 1;
      if (wanted > limit) {
        return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                        field, ".limit: Analyze reads at most ", limit,
                                        " images per set (--max_analyze_images); set a limit "
                                        "or use SubmitAnalysis for the whole data set")));
      }
      sets[s].limit = wanted;
    }
  }
  auto* reactor = context->DefaultReactor();
  const std::string request_id = RequestId(*context);
  susceptibility::AnalysisOptions analysis;
  analysis.bins = request->bins();
  analysis.forward = options_.forward;
  auto shared_sets =
      std::make_shared<std::pair<susceptibility::ImageSet, susceptibility::ImageSet>>(
          std::move(sets[0]), std::move(sets[1]));
  const int64_t max_pixels = options_.max_image_pixels;
  const std::string data_dir = options_.data_dir;
  data::DatasetIndex* const datasets = options_.datasets;
  const bool scheduled = analysis_pool_.TrySchedule([=] {
    absl::StatusOr<std::vector<susceptibility::SusceptibilityReport>> reports;
    absl::Status decoded = absl::OkStatus();
    for (int s = 0; s < 2 && decoded.ok(); ++s) {
      if (dataset_names[s].empty()) continue;
      const std::string field = s == 0 ? "source.dataset.name" : "target.dataset.name";
      auto dir = datasets != nullptr
                     ? datasets->LocalDir(dataset_names[s], field)
                     : common::ResolveUnderRoot(data_dir, "datasets/" + dataset_names[s], field);
      if (dir.ok()) {
        (s == 0 ? shared_sets->first : shared_sets->second).dataset_dir = *dir;
      } else {
        decoded = dir.status();
      }
    }
    for (int s = 0; s < 2 && decoded.ok(); ++s) {
      auto& images = s == 0 ? shared_sets->first.images : shared_sets->second.images;
      const auto& encoded = (*inline_images)[s];
      for (size_t i = 0; i < encoded.size() && decoded.ok(); ++i) {
        if (encoded[i].empty()) continue;
        auto image = data::DecodeImage(encoded[i], max_pixels);
        if (image.ok()) {
          images[i] = std::move(*image);
        } else {
          decoded = image.status();
        }
      }
    }
    if (decoded.ok()) {
      reports = susceptibility::AnalyzeDatasets(models, shared_sets->first, shared_sets->second,
                                                analysis);
    } else {
      reports = decoded;
    }
    if (reports.ok()) ReportsToProto(*reports, response);
    reactor->Finish(ToGrpcStatus(reports.status(), request_id));
  });
  if (!scheduled) {
    reactor->Finish(ToGrpcStatus(
        absl::ResourceExhaustedError("too many analyses queued; retry later"), request_id));
  }
  return reactor;
}

absl::StatusOr<int> SusceptibilityService::DatasetChannels(const std::string& name,
                                                           const std::string& field) const {
  if (options_.datasets != nullptr) return options_.datasets->Channels(name, field);
  ASSIGN_OR_RETURN(const std::string dir,
                   common::ResolveUnderRoot(options_.data_dir, "datasets/" + name, field));
  absl::StatusOr<int> channels = data::ReadDatasetChannels(dir);
  return channels.ok() ? *channels : 0;
}

grpc::ServerUnaryReactor* SusceptibilityService::SubmitAnalysis(
    grpc::CallbackServerContext* context, const v1::AnalyzeRequest* request,
    v1::AnalysisJob* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kSegmenter); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  if (absl::Status s = CheckCommon(*request); !s.ok()) return FinishUnary(context, s);
  auto spec = SpecFromProto(*request);
  if (!spec.ok()) return FinishUnary(context, spec.status());
  // Saturation needs colour in the data sets and in every model (see AnalyzeDatasets):
  // refused here rather than when the job runs.
  std::vector<std::pair<std::string, int>> model_channels;
  for (const auto& model : spec->models) {
    auto resolved = registry_.Resolve(model.name, model.version);
    if (!resolved.ok()) return FinishUnary(context, resolved.status());
    model_channels.emplace_back(
        absl::StrCat("model '", (*resolved)->stored.name, ":", (*resolved)->stored.version, "'"),
        (*resolved)->stored.config.in_channels);
  }
  // Resolving the data-set paths reads the file system, submitting commits to SQLite.
  return RunUnaryOnPool(
      context, store_pool_,
      [this, spec = std::move(*spec), model_channels, response]() -> absl::Status {
        for (const auto* ref : {&spec.source, &spec.target}) {
          const std::string field = ref == &spec.source ? "source" : "target";
          ASSIGN_OR_RETURN(const int channels,
                           DatasetChannels(ref->dataset, field + ".dataset.name"));
          ASSIGN_OR_RETURN(const data::Shift shift, data::ParseShift(ref->shift, field + ".shift"));
          if (shift.kind != data::ShiftKind::kSaturation || shift.is_identity()) continue;
          if (channels > 0) {
            RETURN_IF_ERROR(data::CheckShiftChannels(shift, channels, field + ".shift",
                                                     "data set '" + ref->dataset + "'"));
          }
          for (const auto& [model, channels] : model_channels) {
            RETURN_IF_ERROR(data::CheckShiftChannels(shift, channels, field + ".shift", model));
          }
        }
        ASSIGN_OR_RETURN(scheduler::Job job,
                         scheduler_.Submit(scheduler::JobKind::kAnalysis,
                                           susceptibility::AnalysisSpecToJson(spec)));
        response->set_job_id(job.id);
        return absl::OkStatus();
      },
      kStorePoolBusy);
}

}  // namespace segserve::api
