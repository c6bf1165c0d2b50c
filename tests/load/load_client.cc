#include "tests/load/load_client.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace segserve::load {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

absl::StatusOr<Mix> ParseMix(const std::string& text) {
  Mix mix{0, 0, 0, 0};
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int weight = 0;
    if (!absl::SimpleAtoi(kv.second, &weight) || weight < 0 || weight > 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: weight of '", kv.first, "' must be an integer 0..1000"));
    }
    if (kv.first == "segment") {
      mix.segment = weight;
    } else if (kv.first == "stream") {
      mix.stream = weight;
    } else if (kv.first == "list") {
      mix.list = weight;
    } else if (kv.first == "watch") {
      mix.watch = weight;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: unknown operation '", kv.first, "' (segment, stream, list, watch)"));
    }
  }
  if (mix.segment + mix.stream + mix.list + mix.watch == 0) {
    return absl::InvalidArgumentError("--mix: at least one weight must be > 0");
  }
  return mix;
}

void JobFeed::SetFinished(std::string id) {
  absl::MutexLock lock(&mu_);
  finished_ = std::move(id);
}

void JobFeed::SetLatest(std::string id) {
  absl::MutexLock lock(&mu_);
  latest_ = std::move(id);
}

std::string JobFeed::Pick(uint64_t n) const {
  absl::MutexLock lock(&mu_);
  return (n % 2 == 1 && !latest_.empty()) ? latest_ : finished_;
}

const char* PhaseName(int phase) {
  switch (phase) {
    case kWarmup:
      return "warmup";
    case kMain:
      return "main";
    case kOverload:
      return "overload";
    case kRecovery:
      return "recovery";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<LoadClient>> LoadClient::Create(int index,
                                                               const client::ClientOptions& options,
                                                               const JobFeed& jobs) {
  client::ClientOptions own = options;
  own.dedicated_connection = true;
  auto client = client::Client::Create(own);
  if (!client.ok()) return client.status();
  return std::unique_ptr<LoadClient>(new LoadClient(index, std::move(*client), jobs));
}

LoadClient::LoadClient(int index, std::unique_ptr<client::Client> client, const JobFeed& jobs)
    : index_(index),
      client_(std::move(client)),
      jobs_(jobs),
      segmentation_(v1::Segmentation::NewStub(client_->channel())),
      models_(v1::Models::NewStub(client_->channel())),
      training_(v1::Training::NewStub(client_->channel())),
      rng_(1000 + index) {}

void LoadClient::Run(const Mix& mix, const Workload& workload, const std::atomic<bool>& stop,
                     const std::atomic<int>& phase) {
  const int total = mix.segment + mix.stream + mix.list + mix.watch;
  while (!stop.load()) {
    Recorder& recorder = recorders_[phase.load()];
    int draw = static_cast<int>(rng_() % total);
    if ((draw -= mix.segment) < 0) {
      Segment(workload, recorder);
    } else if ((draw -= mix.stream) < 0) {
      Stream(workload, recorder);
    } else if ((draw -= mix.list) < 0) {
      List(workload, recorder);
    } else {
      Watch(workload, recorder);
    }
  }
}

std::unique_ptr<grpc::ClientContext> LoadClient::Context(const Workload& workload) const {
  auto context = client_->NewStreamContext();
  context->set_deadline(std::chrono::system_clock::now() + workload.timeout);
  return context;
}

const v1::SegmentRequest& LoadClient::NextImage(const Workload& workload) {
  return workload.images[calls_++ % workload.images.size()];
}

void LoadClient::Violation(const std::string& what) {
  if (violations_++ == 0) first_violation_ = absl::StrCat("client ", index_, ": ", what);
}

void LoadClient::Segment(const Workload& workload, Recorder& recorder) {
  const v1::SegmentRequest& request = NextImage(workload);
  auto context = Context(workload);
  v1::SegmentResponse response;
  const auto start = Clock::now();
  const grpc::Status status = segmentation_->Segment(context.get(), request, &response);
  recorder.Record(Kind::kSegment, status.error_code(), MillisSince(start));
  if (status.ok() && (response.mask().empty() || response.height() <= 0)) {
    Violation("Segment: OK without a mask");
  }
}

void LoadClient::Stream(const Workload& workload, Recorder& recorder) {
  auto context = Context(workload);
  const auto start = Clock::now();
  auto stream = segmentation_->SegmentStream(context.get());
  std::set<std::string> expected;
  const std::string prefix = absl::StrCat("c", index_, "-", calls_, "-");
  for (int i = 0; i < workload.stream_images; ++i) {
    v1::SegmentRequest request = NextImage(workload);
    request.set_request_id(absl::StrCat(prefix, i));
    if (!stream->Write(request)) break;  // the stream failed: Finish says why.
    expected.insert(request.request_id());
  }
  stream->WritesDone();
  v1::SegmentResponse response;
  size_t answered = 0;
  while (stream->Read(&response)) {
    const double ms = MillisSince(start);
    if (expected.erase(response.request_id()) == 0) {
      Violation(
          absl::StrCat("SegmentStream: unknown or repeated id '", response.request_id(), "'"));
    }
    ++answered;
    if (response.has_error()) {
      recorder.Record(Kind::kStreamItem, static_cast<grpc::StatusCode>(response.error().code()),
                      ms);
    } else {
      recorder.Record(Kind::kStreamItem, grpc::StatusCode::OK, ms);
      if (response.mask().empty()) Violation("SegmentStream: empty mask");
    }
  }
  const grpc::Status status = stream->Finish();
  recorder.Record(Kind::kStream, status.error_code(), MillisSince(start));
  if (status.ok() && !expected.empty()) {
    Violation(absl::StrCat("SegmentStream: ended OK with ", expected.size(), " of ",
                           workload.stream_images, " images unanswered"));
  }
}

void LoadClient::List(const Workload& workload, Recorder& recorder) {
  auto context = Context(workload);
  v1::ListModelsResponse response;
  const auto start = Clock::now();
  const grpc::Status status = models_->List(context.get(), v1::ListModelsRequest(), &response);
  recorder.Record(Kind::kList, status.error_code(), MillisSince(start));
  if (status.ok() && response.models_size() == 0) Violation("Models.List: no models");
}

void LoadClient::Watch(const Workload& workload, Recorder& recorder) {
  const uint64_t n = ++watches_;
  const bool leave_early = workload.watch_leave_every > 0 && n % workload.watch_leave_every == 0;
  v1::JobRef ref;
  ref.set_job_id(jobs_.Pick(n));
  auto context = Context(workload);
  const auto start = Clock::now();
  auto reader = training_->WatchJob(context.get(), ref);
  v1::JobEvent event;
  bool terminal = false;
  int events = 0;
  while (reader->Read(&event)) {
    ++events;
    terminal = event.terminal();
    if (leave_early) context->TryCancel();
  }
  const grpc::Status status = reader->Finish();
  if (leave_early && status.error_code() == grpc::StatusCode::CANCELLED) {
    recorder.RecordClientCancel(Kind::kWatch, MillisSince(start));
    return;
  }
  recorder.Record(Kind::kWatch, status.error_code(), MillisSince(start));
  if (status.ok() && (!terminal || events == 0)) {
    Violation(absl::StrCat("WatchJob ", ref.job_id(), ": ended OK after ", events,
                           " events without a terminal one"));
  }
}

}  // namespace segserve::load
