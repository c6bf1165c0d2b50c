// MR slices through the real segserve binary: a 1-channel model trained on a NIfTI data set
// (synthetic MR volumes on disk), analysed under a brightness shift, segmenting a volume
// with segctl; saturation refused for the 1-channel set and model at every entry point.
#include "segserve/v1/susceptibility.grpc.pb.h"
#include "server/data/nifti.h"
#include "server/data/synthetic_mr.h"
#include "tests/integration/fault_harness.h"
#include "tests/testing/commands.h"

namespace segserve::fault {
namespace {

// The shared fixture (a segserve over a temp data dir, with stubs) on a NIfTI data set.
class MrTrainingTest : public FaultTest {
 protected:
  void SetUp() override {
    // Four 32x32x6 volumes: 70/15/15 per volume gives 3 train and 1 val volume.
    data::SyntheticMrOptions mr;
    mr.dims = {32, 32, 6};
    ASSERT_TRUE(data::WriteSyntheticMrDataset(data_dir_ + "/datasets/mr", 4, 5, mr).ok());
    ASSERT_NO_FATAL_FAILURE(StartServer({"--bootstrap=false"}));
    susceptibility_ = v1::Susceptibility::NewStub(client_->channel());
  }

  static void SetShift(v1::DatasetRef* ref, v1::Shift::Kind kind, int level) {
    ref->mutable_shift()->set_kind(kind);
    ref->mutable_shift()->set_level(level);
  }

  static v1::TrainSpec Spec(v1::Shift::Kind cross_domain_shift) {
    v1::TrainSpec spec = testing::TinyTrainSpec("mr", 1, 1);
    spec.set_model_name("mr-l1");
    auto* set = spec.add_cross_domain()->mutable_dataset();
    set->set_split("val");  // the set has no test volume
    SetShift(set, cross_domain_shift, 2);
    return spec;
  }

  v1::AnalyzeRequest Analysis(v1::Shift::Kind kind) {
    v1::AnalyzeRequest request;
    request.add_models()->set_name("mr-l1");
    for (v1::ImageSet* set : {request.mutable_source(), request.mutable_target()}) {
      set->mutable_dataset()->set_name("mr");
      set->mutable_dataset()->set_split("train");
      set->set_limit(8);
    }
    SetShift(request.mutable_target()->mutable_dataset(), kind, 3);
    return request;
  }

  std::unique_ptr<v1::Susceptibility::Stub> susceptibility_;
};

TEST_F(MrTrainingTest, OneChannelModelTrainsIsAnalysedAndSegmentsAVolume) {
  v1::Job job;
  grpc::Status status = SubmitTrain(Spec(v1::Shift::KIND_BRIGHTNESS), &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::Job done = WaitTerminal(job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.reason();
  EXPECT_TRUE(done.metrics().count("val_iou"));
  EXPECT_TRUE(done.metrics().count("cross_domain_iou/brightness:2@val"))
      << "metrics: " << done.metrics().size();

  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(&models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).config().in_channels(), 1);
  EXPECT_EQ(models.models(0).config().classes(), 3);

  v1::SusceptibilityReport report;
  auto analyze = client_->NewContext();
  status = susceptibility_->Analyze(analyze.get(), Analysis(v1::Shift::KIND_BRIGHTNESS), &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(report.models_size(), 1);
  EXPECT_EQ(report.source_images(), 8);
  EXPECT_EQ(report.target_images(), 8);
  EXPECT_EQ(report.models(0).layers_size(), 10);

  // A volume of the set, segmented slice by slice with the model it trained.
  const std::string volume = data_dir_ + "/datasets/mr/imagesTr/mr_000_0000.nii.gz";
  const std::string out = dir_.path() + "/mask.nii.gz";
  const testing::CommandResult segment =
      testing::RunCommand(testing::SegctlBinary() + " --server " + server_->grpc_target() +
                          " segment --model mr-l1 --nifti " + volume + " --out " + out);
  ASSERT_EQ(segment.exit_code, 0) << segment.output;
  absl::StatusOr<data::NiftiLabels> labels = data::ReadNiftiLabels(out);
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->dims, (std::array<int64_t, 3>{32, 32, 6}));
}

TEST_F(MrTrainingTest, SaturationIsRefusedForOneChannelAtEveryEntryPoint) {
  v1::Job job;
  grpc::Status status = SubmitTrain(Spec(v1::Shift::KIND_SATURATION), &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "spec.cross_domain[0].shift: saturation needs 3 channels; data set 'mr' has 1");

  v1::ExperimentSpec experiment;
  experiment.set_dataset("mr");
  experiment.add_encoders(v1::ENCODER_RESNET18);
  experiment.add_prune_levels(1);
  experiment.add_seeds(1);
  experiment.add_shifts("brightness");
  experiment.add_shifts("saturation");
  experiment.add_shift_levels(1);
  auto submit = client_->NewContext();
  status = training_->SubmitExperiment(submit.get(), experiment, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "spec.shifts[1]: saturation needs 3 channels; data set 'mr' has 1");
  experiment.clear_shifts();
  experiment.add_shifts("brightness");
  experiment.mutable_susceptibility()->add_targets("saturation:3");
  auto submit_susceptibility = client_->NewContext();
  status = training_->SubmitExperiment(submit_susceptibility.get(), experiment, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "spec.susceptibility.targets[0]: saturation needs 3 channels; data set 'mr' has 1");

  // The model side: a 1-channel model is needed first.
  ASSERT_TRUE(SubmitTrain(Spec(v1::Shift::KIND_CONTRAST), &job).ok());
  ASSERT_EQ(WaitTerminal(job.job_id()).state(), v1::JOB_STATE_SUCCEEDED);
  v1::SusceptibilityReport report;
  auto analyze = client_->NewContext();
  status = susceptibility_->Analyze(analyze.get(), Analysis(v1::Shift::KIND_SATURATION), &report);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "target.shift: saturation needs 3 channels; data set 'mr' has 1");
  v1::AnalysisJob analysis_job;
  auto submit_analysis = client_->NewContext();
  status = susceptibility_->SubmitAnalysis(submit_analysis.get(),
                                           Analysis(v1::Shift::KIND_SATURATION), &analysis_job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "target.shift: saturation needs 3 channels; data set 'mr' has 1");
}

}  // namespace
}  // namespace segserve::fault
