#include "server/api/segmentation_service.h"

#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/api/call_deadline.h"
#include "server/api/converters.h"
#include "server/api/failed_reactors.h"
#include "server/api/request_id.h"
#include "server/api/status_mapping.h"

namespace segserve::api {
namespace {

// Unary Segment: cancellation reaches the engine through the shared flag.
class SegmentReactor final : public grpc::ServerUnaryReactor {
 public:
  SegmentReactor(SegmentationService& service, grpc::CallbackServerContext* context,
                 const v1::SegmentRequest* request, v1::SegmentResponse* response)
      : cancelled_(std::make_shared<inference::CancelFlag>(false)) {
    const std::string request_id = RequestId(*context);
    service.Start(*request, request_id, DeadlineOf(*context), cancelled_,
                  [this, response, request_id](absl::StatusOr<v1::SegmentResponse> result) {
                    if (result.ok()) {
                      *response = std::move(*result);
                      Finish(grpc::Status::OK);
                    } else {
                      Finish(ToGrpcStatus(result.status(), request_id));
                    }
                  });
  }
  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<inference::CancelFlag> cancelled_;
};

// SegmentStream: many requests in flight, responses in completion order, one write at a
// time. The reactor outlives OnDone until the engine has called back for every request.
//
// Locking: one absl::Mutex for the stream's state. No callback of ours runs under it:
// SegmentationService::Start (and the engine behind it) may call the result callback
// inline, so OnReadDone releases the lock around Start. gRPC never runs a reaction inline
// from StartRead/StartWrite/Finish (server bidi reactions are not inlineable), so those are
// called with the lock held, which keeps "one read, one write, one Finish" simple.
class SegmentStreamReactor final
    : public grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse> {
 public:
  SegmentStreamReactor(SegmentationService& service, grpc::CallbackServerContext* context,
                       std::unique_ptr<StreamSlot> slot)
      : service_(service),
        slot_(std::move(slot)),
        context_(context),
        stream_id_(RequestId(*context)),
        cancelled_(std::make_shared<inference::CancelFlag>(false)) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    // incoming_ belongs to the one outstanding read, which has completed; the next
    // StartRead comes after this move. Moved, not copied; the engine reads the image
    // bytes where they lie, so the request lives until its result comes back.
    auto request = std::make_shared<v1::SegmentRequest>(std::move(incoming_));
    incoming_.Clear();
    std::string id = request->request_id();
    {
      absl::MutexLock lock(&mu_);
      if (id.empty()) id = absl::StrCat(stream_id_, "-", ++sequence_);
      // Counted before Start: an inline or concurrent OnResult must find it, and the
      // reactor cannot be deleted while it is > 0.
      ++inflight_;
    }
    service_.Start(*request, id, DeadlineOf(*context_), cancelled_,
                   [this, id, request](absl::StatusOr<v1::SegmentResponse> result) {
                     OnResult(id, std::move(result));
                   });
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    // Decided under the lock, so a result that came back meanwhile (inline or on another
    // thread) either already lowered inflight_ or will see read_paused_ and resume.
    if (inflight_ < service_.options().max_stream_inflight) {
      StartRead(&incoming_);
    } else {
      read_paused_ = true;  // back-pressure: resume when a result comes back.
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      cancelled_->store(true);
      pending_.clear();
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      }
      return;
    }
    MaybeWrite();
    MaybeFinish();
  }

  void OnCancel() override {
    cancelled_->store(true);
    absl::MutexLock lock(&mu_);
    pending_.clear();
    if (!finished_ && !writing_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    }
  }

  void OnDone() override {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = inflight_ == 0;
    }
    if (last) delete this;
  }

 private:
  void OnResult(const std::string& id, absl::StatusOr<v1::SegmentResponse> result) {
    v1::SegmentResponse response;
    if (result.ok()) {
      response = std::move(*result);
    } else {
      const grpc::Status status = ToGrpcStatus(result.status(), id);
      response.mutable_error()->set_code(status.error_code());
      response.mutable_error()->set_message(status.error_message());
    }
    response.set_request_id(id);
    bool destroy = false;
    {
      absl::MutexLock lock(&mu_);
      --inflight_;
      if (!done_ && !finished_) {
        pending_.push_back(std::move(response));
        MaybeWrite();
        if (read_paused_ && !reads_done_) {
          read_paused_ = false;
          StartRead(&incoming_);
        }
        MaybeFinish();
      }
      destroy = done_ && inflight_ == 0;
    }
    if (destroy) delete this;
  }

  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || pending_.empty() || finished_) return;
    writing_ = true;
    outgoing_ = std::move(pending_.front());
    pending_.pop_front();
    StartWrite(&outgoing_);
  }

  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reads_done_ && inflight_ == 0 && pending_.empty() && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  SegmentationService& service_;
  std::unique_ptr<StreamSlot> slot_;  // counts against the client's stream limit
  grpc::CallbackServerContext* context_;
  const std::string stream_id_;
  std::shared_ptr<inference::CancelFlag> cancelled_;
  // Reactions may arrive on several gRPC and engine threads at once.
  absl::Mutex mu_;
  v1::SegmentRequest incoming_;  // the outstanding read's target (see OnReadDone)
  v1::SegmentResponse outgoing_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::SegmentResponse> pending_ ABSL_GUARDED_BY(mu_);
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

SegmentationService::SegmentationService(const SegmentationServiceOptions& options,
                                         registry::ModelRegistry& registry,
                                         inference::SegmentationEngine& engine,
                                         AccessControl& access)
    : options_(options), registry_(registry), engine_(engine), access_(access) {}

void SegmentationService::Start(const v1::SegmentRequest& request, const std::string& request_id,
                                inference::Clock::time_point deadline,
                                std::shared_ptr<const inference::CancelFlag> cancelled,
                                std::function<void(absl::StatusOr<v1::SegmentResponse>)> done) {
  if (request.request_id().size() > 128) {
    done(absl::InvalidArgumentError("request_id: at most 128 bytes"));
    return;
  }
  if (!request.has_model() || request.model().name().empty()) {
    done(absl::InvalidArgumentError("model.name: required (a model name or an alias)"));
    return;
  }
  auto model = registry_.Resolve(request.model().name(), request.model().version());
  if (!model.ok()) {
    done(model.status());
    return;
  }
  auto image = ImageFromProto(request.image(), options_.max_image_pixels);
  if (!image.ok()) {
    done(image.status());
    return;
  }
  auto params = ParamsFromProto(request.options());
  if (!params.ok()) {
    done(params.status());
    return;
  }
  const v1::SegmentOptions options = request.options();
  engine_.Segment(*model, std::move(*image), *params, deadline, std::move(cancelled),
                  [done = std::move(done), options,
                   request_id](absl::StatusOr<inference::SegmentResult> result) {
                    if (!result.ok()) {
                      done(result.status());
                      return;
                    }
                    v1::SegmentResponse response;
                    response.set_request_id(request_id);
                    absl::Status filled = FillSegmentResponse(*result, options, &response);
                    if (!filled.ok()) {
                      done(filled);
                      return;
                    }
                    done(std::move(response));
                  });
}

grpc::ServerUnaryReactor* SegmentationService::Segment(grpc::CallbackServerContext* context,
                                                       const v1::SegmentRequest* request,
                                                       v1::SegmentResponse* response) {
  if (auto caller = access_.Authorize(*context, auth::Role::kSegmenter); !caller.ok()) {
    return FinishUnary(context, caller.status());
  }
  return new SegmentReactor(*this, context, request, response);
}

grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse>*
SegmentationService::SegmentStream(grpc::CallbackServerContext* context) {
  using FailedStream = FailedBidiReactor<v1::SegmentRequest, v1::SegmentResponse>;
  auto caller = access_.Authorize(*context, auth::Role::kSegmenter);
  if (!caller.ok()) return new FailedStream(ToGrpcStatus(caller.status(), RequestId(*context)));
  auto slot = access_.OpenStream(*caller);
  if (!slot.ok()) return new FailedStream(ToGrpcStatus(slot.status(), RequestId(*context)));
  return new SegmentStreamReactor(*this, context, std::move(*slot));
}

}  // namespace segserve::api
