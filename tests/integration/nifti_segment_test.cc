// `segctl segment --nifti` against the real segserve binary: a synthetic MR volume in, a
// label volume out whose header matches the input's and whose slices are what Segment
// answers for each slice.
#include <set>
#include <thread>

#include "client/lib/client.h"
#include "gtest/gtest.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/data/nifti.h"
#include "server/data/synthetic_mr.h"
#include "tests/testing/commands.h"
#include "tests/testing/model_fixture.h"
#include "tests/testing/server_process.h"

namespace segserve {
namespace {

model::UnetConfig MrConfig(int in_channels) {
  model::UnetConfig config;
  config.encoder = model::EncoderKind::kResNet18;
  config.skip_prune_level = 1;
  config.in_channels = in_channels;
  config.classes = 3;
  // A strong normalisation: the random weights then see inputs far from 0, so their
  // argmax varies across a slice instead of being one class everywhere.
  config.mean.assign(in_channels, 0.3f);
  config.std.assign(in_channels, 0.05f);
  return config;
}

class NiftiSegmentTest : public ::testing::Test {
 protected:
  static constexpr int kSeeds = 6;

  void SetUp() override {
    // Random weights often give one class everywhere, which would hide slice-order and
    // orientation mistakes: a few seeds are served and the test uses the first whose
    // masks vary (VariedModel).
    for (int seed = 11; seed < 11 + kSeeds; ++seed) {
      ASSERT_TRUE(
          testing::AddTestModel(dir_.path(), "mr" + std::to_string(seed), MrConfig(1), seed).ok());
    }
    ASSERT_TRUE(testing::AddTestModel(dir_.path(), "rgb", MrConfig(3), 12).ok());
    auto server = testing::ServerProcess::Start(testing::SegserveBinary(), dir_.path(), {});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions options;
    options.target = server_->grpc_target();
    options.timeout = std::chrono::seconds(120);
    client_ = std::move(*client::Client::Create(options));
    auto health = client_->Health();
    for (int i = 0; i < 600 && !(health.ok() && *health == client::ServingStatus::kServing); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      health = client_->Health();
    }
    ASSERT_TRUE(health.ok() && *health == client::ServingStatus::kServing);
    stub_ = v1::Segmentation::NewStub(client_->channel());
  }

  testing::CommandResult Segctl(const std::string& args) {
    return testing::RunCommand(testing::SegctlBinary() + " --server " + server_->grpc_target() +
                               " " + args);
  }

  // What Segment answers for one slice of the normalised volume.
  data::Mask SegmentSlice(const std::string& model, const data::NiftiVolume& normalised, int axis,
                          int64_t index) {
    const data::Image slice = data::ExtractSlice(normalised.voxels, normalised.dims, axis, index);
    v1::SegmentRequest request;
    request.mutable_model()->set_name(model);
    request.mutable_options()->set_mask_encoding(v1::MASK_RAW);
    auto* raw = request.mutable_image()->mutable_raw();
    raw->set_height(slice.height);
    raw->set_width(slice.width);
    raw->set_channels(1);
    raw->set_dtype(v1::DTYPE_FLOAT32);
    raw->set_data(slice.bytes.data(), slice.bytes.size());
    v1::SegmentResponse response;
    auto context = client_->NewContext();
    grpc::Status status = stub_->Segment(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    data::Mask mask;
    mask.height = response.height();
    mask.width = response.width();
    mask.ids.assign(response.mask().begin(), response.mask().end());
    return mask;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<v1::Segmentation::Stub> stub_;
};

TEST_F(NiftiSegmentTest, MaskVolumeHasTheInputHeaderAndPerSliceSegmentResults) {
  data::SyntheticMrOptions options;
  options.dims = {48, 40, 6};
  auto volume = data::GenerateSyntheticMrVolume(1, 0, options);
  ASSERT_TRUE(volume.ok()) << volume.status();
  const std::string in = dir_.path() + "/case_0000.nii.gz";
  ASSERT_TRUE(data::WriteNiftiFloat(in, volume->image).ok());
  // The first served model whose answer for the middle slice holds more than one class.
  data::NiftiVolume probe = volume->image;
  data::NormalizeIntensities(probe.voxels);
  std::string model;
  for (int seed = 11; seed < 11 + kSeeds && model.empty(); ++seed) {
    const data::Mask mask = SegmentSlice("mr" + std::to_string(seed), probe, 2, 3);
    if (std::set<uint8_t>(mask.ids.begin(), mask.ids.end()).size() > 1) {
      model = "mr" + std::to_string(seed);
    }
  }
  ASSERT_FALSE(model.empty()) << "no served model gives more than one class";

  struct Case {
    int axis;
    const char* normalise;
    const char* out;
  };
  for (const Case& c : {Case{2, "percentile", "mask.nii.gz"}, Case{0, "zscore", "mask0.nii"}}) {
    SCOPED_TRACE(c.out);
    const std::string out = dir_.path() + "/" + c.out;
    testing::CommandResult r =
        Segctl("segment --model " + model + " --nifti " + in + " --out " + out + " --axis " +
               std::to_string(c.axis) + " --normalise " + c.normalise);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("slices along axis " + std::to_string(c.axis)), std::string::npos)
        << r.output;

    auto input = data::ReadNifti(in);
    auto mask = data::ReadNifti(out);
    auto labels = data::ReadNiftiLabels(out);
    ASSERT_TRUE(input.ok() && mask.ok() && labels.ok()) << mask.status() << labels.status();
    EXPECT_EQ(mask->version, input->version);
    EXPECT_EQ(mask->dims, input->dims);
    EXPECT_EQ(mask->spacing, input->spacing);
    EXPECT_EQ(mask->qform_code, input->qform_code);
    EXPECT_EQ(mask->sform_code, input->sform_code);
    EXPECT_EQ(mask->qform, input->qform);
    EXPECT_EQ(mask->sform, input->sform);
    EXPECT_EQ(mask->datatype, 2);  // DT_UINT8

    // The random model must give more than one class, or slice order and orientation
    // mistakes could not show.
    std::set<uint8_t> distinct(labels->ids.begin(), labels->ids.end());
    EXPECT_GT(distinct.size(), 1u) << r.output;

    data::NiftiVolume normalised = *input;
    auto method = data::ParseMrNormalization(c.normalise);
    ASSERT_TRUE(method.ok());
    data::NormalizeIntensities(normalised.voxels, {*method});
    for (int64_t s = 0; s < data::NumSlices(input->dims, c.axis); ++s) {
      const data::Mask expected = SegmentSlice(model, normalised, c.axis, s);
      EXPECT_EQ(data::ExtractMaskSlice(labels->ids, labels->dims, c.axis, s), expected)
          << "slice " << s;
    }
  }
}

TEST_F(NiftiSegmentTest, RefusesAModelThatIsNotOneChannel) {
  auto volume = data::GenerateSyntheticMrVolume(2, 0);
  ASSERT_TRUE(volume.ok());
  const std::string in = dir_.path() + "/v.nii";
  ASSERT_TRUE(data::WriteNiftiFloat(in, volume->image).ok());
  testing::CommandResult r =
      Segctl("segment --model rgb --nifti " + in + " --out " + dir_.path() + "/m.nii.gz");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("FAILED_PRECONDITION: model rgb:1 takes 3 input channels; --nifti sends "
                          "1-channel MR slices and needs a 1-channel model"),
            std::string::npos)
      << r.output;
}

TEST_F(NiftiSegmentTest, BadVolumeIsRefusedNamingTheFile) {
  const std::string in = dir_.path() + "/broken.nii.gz";
  auto volume = data::GenerateSyntheticMrVolume(2, 0);
  ASSERT_TRUE(volume.ok());
  ASSERT_TRUE(data::WriteNiftiFloat(in, volume->image).ok());
  testing::CommandResult cut = testing::RunCommand("truncate -s 2000 " + in);
  ASSERT_EQ(cut.exit_code, 0);
  testing::CommandResult r =
      Segctl("segment --model mr11 --nifti " + in + " --out " + dir_.path() + "/m.nii.gz");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("INVALID_ARGUMENT: " + in + ": truncated gzip stream"), std::string::npos)
      << r.output;
  r = Segctl("segment --model mr11 --nifti " + in + " --out " + dir_.path() + "/m.png");
  EXPECT_NE(r.output.find("--out: with --nifti, a .nii or .nii.gz file"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace segserve
