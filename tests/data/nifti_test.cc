// NIfTI volumes (server/data/nifti.h): real files in a temp dir, read back as written.
#include "server/data/nifti.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/data/synthetic_mr.h"
#include "tests/data/temp_dir.h"

extern "C" {
#include "nifti2_io.h"
}

namespace segserve::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A rotated, flipped, anisotropic affine: orientation bugs show up as mismatches.
Affine ObliqueAffine() {
  const double c = std::cos(0.3), s = std::sin(0.3);
  Affine a{};
  a[0] = {-0.9 * c, 1.1 * s, 0, 31.5};
  a[1] = {0.9 * s, 1.1 * c, 0, -20.25};
  a[2] = {0, 0, 2.5, 7.0};
  a[3] = {0, 0, 0, 1};
  return a;
}

NiftiVolume TestVolume(std::array<int64_t, 3> dims, int version = 1) {
  auto volume = NewNiftiVolume(dims, ObliqueAffine(), version);
  EXPECT_TRUE(volume.ok()) << volume.status();
  for (size_t i = 0; i < volume->voxels.size(); ++i) {
    volume->voxels[i] = static_cast<float>(i % 997) * 1.5f - 40.0f;
  }
  return *volume;
}

void ExpectAffineNear(const Affine& a, const Affine& b, double tol) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(a[r][c], b[r][c], tol) << r << "," << c;
  }
}

void ExpectSameGeometry(const NiftiVolume& a, const NiftiVolume& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.dims, b.dims);
  EXPECT_EQ(a.spacing, b.spacing);
  EXPECT_EQ(a.qform_code, b.qform_code);
  EXPECT_EQ(a.sform_code, b.sform_code);
  // Bit-identical: the header is copied, not recomputed.
  ExpectAffineNear(a.qform, b.qform, 0);
  ExpectAffineNear(a.sform, b.sform, 0);
}

std::string Read(const std::string& path) { return *common::ReadFile(path); }
void Write(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(common::WriteFileAtomically(path, bytes).ok());
}

// Rewrites the (uncompressed NIfTI-1) header of `path` with `edit`.
template <typename F>
void EditHeader(const std::string& path, F edit) {
  std::string bytes = Read(path);
  nifti_1_header h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  edit(h);
  std::memcpy(bytes.data(), &h, sizeof(h));
  Write(path, bytes);
}

MATCHER_P(InvalidArgumentWith, text, "") {
  return arg.code() == absl::StatusCode::kInvalidArgument &&
         std::string(arg.message()).find(text) != std::string::npos;
}

class NiftiTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
};

TEST_F(NiftiTest, NewVolumeHoldsTheAffineInBothForms) {
  NiftiVolume v = TestVolume({5, 6, 7});
  EXPECT_EQ(v.qform_code, 1);
  EXPECT_EQ(v.sform_code, 1);
  ExpectAffineNear(v.sform, ObliqueAffine(), 1e-6);
  ExpectAffineNear(v.qform, ObliqueAffine(), 1e-5);
  EXPECT_NEAR(v.spacing[0], 0.9, 1e-6);
  EXPECT_NEAR(v.spacing[2], 2.5, 1e-6);
}

class NiftiRoundTripTest : public NiftiTest,
                           public ::testing::WithParamInterface<std::tuple<int, const char*>> {};

TEST_P(NiftiRoundTripTest, FloatVolumeReadsBackExactly) {
  const auto [version, ext] = GetParam();
  NiftiVolume v = TestVolume({9, 7, 5}, version);
  const std::string path = dir_ / (std::string("v") + ext);
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  auto back = ReadNifti(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameGeometry(v, *back);
  EXPECT_EQ(back->datatype, DT_FLOAT32);
  EXPECT_EQ(back->voxels, v.voxels);
  EXPECT_EQ(back->source, path);
  // Gzip is recognised by its bytes, not the name.
  EXPECT_EQ(Read(path).substr(0, 2) == "\x1f\x8b", std::string(ext) == ".nii.gz");
}

TEST_P(NiftiRoundTripTest, LabelsKeepTheInputHeaderAndOrientation) {
  const auto [version, ext] = GetParam();
  NiftiVolume image = TestVolume({8, 6, 4}, version);
  std::vector<uint8_t> ids(image.voxels.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint8_t>(i % 3);
  for (LabelType type : {LabelType::kUInt8, LabelType::kInt16}) {
    const std::string path = dir_ / (std::string("labels") + ext);
    ASSERT_TRUE(WriteNiftiLabels(path, image, ids, type).ok());
    auto back = ReadNifti(path);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameGeometry(image, *back);
    EXPECT_EQ(back->datatype, type == LabelType::kUInt8 ? DT_UINT8 : DT_INT16);
    auto labels = ReadNiftiLabels(path);
    ASSERT_TRUE(labels.ok()) << labels.status();
    EXPECT_EQ(labels->ids, ids);
    EXPECT_TRUE(CheckSameShape(image, *labels).ok());
    // Everything but the fields that describe the new voxels is the input's header.
    ASSERT_EQ(back->header.size(), image.header.size());
    if (version == 1) {
      nifti_1_header a, b;
      std::memcpy(&a, image.header.data(), sizeof(a));
      std::memcpy(&b, back->header.data(), sizeof(b));
      EXPECT_EQ(b.intent_code, NIFTI_INTENT_LABEL);
      EXPECT_EQ(std::memcmp(a.pixdim, b.pixdim, sizeof(a.pixdim)), 0);
      EXPECT_EQ(std::memcmp(a.srow_x, b.srow_x, sizeof(a.srow_x)), 0);
      EXPECT_EQ(a.quatern_b, b.quatern_b);
      EXPECT_EQ(a.qoffset_z, b.qoffset_z);
      EXPECT_EQ(a.xyzt_units, b.xyzt_units);
      EXPECT_STREQ(a.descrip, b.descrip);
    } else {
      nifti_2_header a, b;
      std::memcpy(&a, image.header.data(), sizeof(a));
      std::memcpy(&b, back->header.data(), sizeof(b));
      EXPECT_EQ(b.intent_code, NIFTI_INTENT_LABEL);
      EXPECT_EQ(std::memcmp(a.pixdim, b.pixdim, sizeof(a.pixdim)), 0);
      EXPECT_EQ(std::memcmp(a.srow_y, b.srow_y, sizeof(a.srow_y)), 0);
      EXPECT_EQ(a.quatern_c, b.quatern_c);
    }
  }
}

// libnifti's own reader (a second, independent implementation) sees the same geometry and
// labels in what we write.
TEST_P(NiftiRoundTripTest, LibniftiReadsWhatWeWrite) {
  const auto [version, ext] = GetParam();
  NiftiVolume image = TestVolume({8, 6, 4}, version);
  std::vector<uint8_t> ids(image.voxels.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint8_t>((i * 7) % 5);
  const std::string path = dir_ / (std::string("labels") + ext);
  ASSERT_TRUE(WriteNiftiLabels(path, image, ids).ok());
  nifti_image* nim = nifti_image_read(path.c_str(), 1);
  ASSERT_NE(nim, nullptr);
  // (libnifti 3.0.1 reports nifti_type 1 for single-file NIfTI-2 too; check the file.)
  std::string raw = Read(path);
  if (std::string(ext) == ".nii") {
    int32_t sizeof_hdr;
    std::memcpy(&sizeof_hdr, raw.data(), 4);
    EXPECT_EQ(sizeof_hdr, version == 1 ? 348 : 540);
  }
  EXPECT_EQ(nim->nx, 8);
  EXPECT_EQ(nim->ny, 6);
  EXPECT_EQ(nim->nz, 4);
  EXPECT_EQ(nim->nt, 1);
  EXPECT_EQ(nim->datatype, DT_UINT8);
  EXPECT_EQ(nim->qform_code, 1);
  EXPECT_EQ(nim->sform_code, 1);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(nim->sto_xyz.m[r][c], image.sform[r][c], 1e-9);
      EXPECT_NEAR(nim->qto_xyz.m[r][c], image.qform[r][c], 1e-5);
    }
  }
  ASSERT_EQ(static_cast<size_t>(nim->nvox), ids.size());
  EXPECT_EQ(std::memcmp(nim->data, ids.data(), ids.size()), 0);
  nifti_image_free(nim);
}

INSTANTIATE_TEST_SUITE_P(VersionsAndCompression, NiftiRoundTripTest,
                         ::testing::Combine(::testing::Values(1, 2),
                                            ::testing::Values(".nii", ".nii.gz")));

TEST_F(NiftiTest, ReadsBigEndianFilesAndScaling) {
  NiftiVolume v = TestVolume({4, 3, 2});
  const std::string path = dir_ / "be.nii";
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  std::string bytes = Read(path);
  nifti_1_header h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  h.scl_slope = 2.0f;
  h.scl_inter = 1.0f;
  swap_nifti_header(&h, 1);
  std::memcpy(bytes.data(), &h, sizeof(h));
  nifti_swap_4bytes(static_cast<int64_t>(v.voxels.size()), bytes.data() + 352);
  Write(path, bytes);
  auto back = ReadNifti(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectAffineNear(back->sform, v.sform, 0);
  for (size_t i = 0; i < v.voxels.size(); ++i) {
    EXPECT_FLOAT_EQ(back->voxels[i], v.voxels[i] * 2 + 1);
  }
}

// Data right after the header (no extension flag), as some writers do: found by the fuzzer
// (an empty read of the extension gap passed a null pointer to memcpy).
TEST_F(NiftiTest, ReadsDataThatStartsRightAfterTheHeader) {
  NiftiVolume v = TestVolume({3, 3, 2});
  const std::string path = dir_ / "no_ext.nii";
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  std::string bytes = Read(path);
  nifti_1_header h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  h.vox_offset = 348;
  std::memcpy(bytes.data(), &h, sizeof(h));
  bytes.erase(348, 4);
  Write(path, bytes);
  auto back = ReadNifti(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->voxels, v.voxels);
}

// --- Every bad input: InvalidArgument naming the file and the problem.

class NiftiRejectTest : public NiftiTest {
 protected:
  std::string WriteVolume(const std::string& name, std::array<int64_t, 3> dims = {8, 8, 4}) {
    const std::string path = dir_ / name;
    EXPECT_TRUE(WriteNiftiFloat(path, TestVolume(dims)).ok());
    return path;
  }
  absl::Status ReadStatus(const std::string& path, const NiftiLimits& limits = {}) {
    return ReadNifti(path, limits).status();
  }
};

TEST_F(NiftiRejectTest, TruncatedGzip) {
  const std::string path = WriteVolume("cut.nii.gz");
  const std::string bytes = Read(path);
  Write(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("truncated gzip stream")));
  // Only the trailer (CRC and size) missing: the data is all there but unchecked.
  Write(path, bytes.substr(0, bytes.size() - 4));
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("truncated gzip stream")));
}

TEST_F(NiftiRejectTest, CorruptGzip) {
  const std::string path = WriteVolume("bad.nii.gz");
  std::string bytes = Read(path);
  for (size_t i = 20; i < bytes.size() - 8; i += 7) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  Write(path, bytes);
  EXPECT_THAT(ReadStatus(path), InvalidArgumentWith(path));
}

TEST_F(NiftiRejectTest, HeaderDimensionsDisagreeWithTheData) {
  const std::string path = WriteVolume("short.nii");
  const std::string bytes = Read(path);
  Write(path, bytes.substr(0, bytes.size() - 10));
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("disagree with the data size")));
  Write(path, bytes + std::string(64, '\0'));
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("disagree with the data size")));
}

TEST_F(NiftiRejectTest, FourDimensionalVolume) {
  const std::string path = WriteVolume("4d.nii");
  EditHeader(path, [](nifti_1_header& h) {
    h.dim[0] = 4;
    h.dim[4] = 3;
  });
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("4-D volume (dim[4] = 3)")));
}

TEST_F(NiftiRejectTest, UnsupportedDatatype) {
  const std::string path = WriteVolume("complex.nii");
  EditHeader(path, [](nifti_1_header& h) {
    h.datatype = DT_COMPLEX64;
    h.bitpix = 64;
  });
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("COMPLEX64) is not supported")));
  EditHeader(path, [](nifti_1_header& h) {
    h.datatype = DT_INT16;
    h.bitpix = 32;
  });
  EXPECT_THAT(ReadStatus(path), InvalidArgumentWith("bitpix = 32 disagrees with datatype"));
}

TEST_F(NiftiRejectTest, AbsurdSizes) {
  const std::string path = WriteVolume("huge.nii");
  EditHeader(path, [](nifti_1_header& h) { h.dim[1] = 30000; });
  EXPECT_THAT(ReadStatus(path), AllOf(InvalidArgumentWith(path),
                                      InvalidArgumentWith("dim[1] = 30000 exceeds the limit")));
  const std::string small = WriteVolume("small.nii");
  NiftiLimits limits;
  limits.max_voxels = 100;
  EXPECT_THAT(ReadStatus(small, limits),
              InvalidArgumentWith("256 voxels exceeds the limit of 100"));
  EditHeader(small, [](nifti_1_header& h) { h.dim[2] = 0; });
  EXPECT_THAT(ReadStatus(small), InvalidArgumentWith("dim[2] = 0: must be >= 1"));
}

TEST_F(NiftiRejectTest, NotNifti) {
  const std::string path = dir_ / "junk.nii";
  Write(path, std::string(400, 'x'));
  EXPECT_THAT(ReadStatus(path),
              AllOf(InvalidArgumentWith(path), InvalidArgumentWith("not a NIfTI")));
  Write(path, "tiny");
  EXPECT_THAT(ReadStatus(path), InvalidArgumentWith("too short for a NIfTI header"));
  const std::string pair = WriteVolume("pair.nii");
  EditHeader(pair, [](nifti_1_header& h) { std::memcpy(h.magic, "ni1", 4); });
  EXPECT_THAT(ReadStatus(pair), InvalidArgumentWith(".hdr/.img pair is not supported"));
}

TEST_F(NiftiRejectTest, NonFiniteIntensities) {
  NiftiVolume v = TestVolume({4, 4, 2});
  v.voxels[5] = std::nanf("");
  const std::string path = dir_ / "nan.nii";
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  EXPECT_THAT(ReadStatus(path), AllOf(InvalidArgumentWith(path),
                                      InvalidArgumentWith("voxel 5 is not a finite number")));
}

TEST_F(NiftiRejectTest, NonIntegerLabels) {
  NiftiVolume v = TestVolume({4, 4, 2});
  std::fill(v.voxels.begin(), v.voxels.end(), 1.0f);
  v.voxels[4 + 4 * 2 + 16] = 1.5f;  // (0, 3, 1)
  const std::string path = dir_ / "labels.nii.gz";
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  EXPECT_THAT(ReadNiftiLabels(path).status(),
              AllOf(InvalidArgumentWith(path),
                    InvalidArgumentWith("label voxel (0, 3, 1) = 1.5: labels must be integer")));
  v.voxels[4 + 4 * 2 + 16] = 300;
  ASSERT_TRUE(WriteNiftiFloat(path, v).ok());
  EXPECT_THAT(ReadNiftiLabels(path).status(), InvalidArgumentWith("= 300"));
}

TEST_F(NiftiRejectTest, LabelShapeDiffersFromItsImage) {
  NiftiVolume image = TestVolume({4, 4, 2});
  image.source = "img.nii.gz";
  NiftiLabels labels;
  labels.source = "lab.nii.gz";
  labels.dims = {4, 4, 3};
  EXPECT_THAT(CheckSameShape(image, labels),
              AllOf(InvalidArgumentWith("lab.nii.gz: shape 4x4x3 differs from its image "
                                        "img.nii.gz (4x4x2)")));
}

// --- Slicing and normalisation.

TEST(NiftiSliceTest, EveryAxisGivesTheOtherTwoFasterAlongColumns) {
  const std::array<int64_t, 3> dims{5, 4, 3};
  std::vector<float> voxels(60);
  for (int k = 0; k < 3; ++k) {
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 5; ++i) voxels[i + 5 * (j + 4 * k)] = i + 100.0f * j + 10000.0f * k;
    }
  }
  auto at = [](const Image& image, int r, int c) {
    float v;
    std::memcpy(&v, image.bytes.data() + 4 * (r * image.width + c), 4);
    return v;
  };
  Image z = ExtractSlice(voxels, dims, 2, 2);
  EXPECT_EQ(z.height, 4);
  EXPECT_EQ(z.width, 5);
  EXPECT_EQ(z.channels, 1);
  EXPECT_EQ(z.depth, PixelDepth::kF32);
  EXPECT_EQ(at(z, 3, 1), 1 + 300 + 20000);
  Image y = ExtractSlice(voxels, dims, 1, 3);
  EXPECT_EQ(y.height, 3);
  EXPECT_EQ(y.width, 5);
  EXPECT_EQ(at(y, 2, 4), 4 + 300 + 20000);
  Image x = ExtractSlice(voxels, dims, 0, 1);
  EXPECT_EQ(x.height, 3);
  EXPECT_EQ(x.width, 4);
  EXPECT_EQ(at(x, 1, 2), 1 + 200 + 10000);
  EXPECT_EQ(NumSlices(dims, 0), 5);
  EXPECT_FALSE(ValidateAxis(3).ok());

  for (int axis = 0; axis < 3; ++axis) {
    std::vector<uint8_t> ids(60, 0);
    for (int64_t s = 0; s < dims[axis]; ++s) {
      Image slice = ExtractSlice(voxels, dims, axis, s);
      Mask mask = Mask::Create(slice.height, slice.width);
      for (size_t p = 0; p < mask.ids.size(); ++p) {
        float v;
        std::memcpy(&v, slice.bytes.data() + 4 * p, 4);
        mask.ids[p] = static_cast<uint8_t>(static_cast<int>(v) % 251);
      }
      ASSERT_TRUE(InsertSlice(mask, dims, axis, s, ids).ok());
      EXPECT_EQ(ExtractMaskSlice(ids, dims, axis, s), mask);
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(ids[i], static_cast<int>(voxels[i]) % 251) << "axis " << axis;
    }
  }
  std::vector<uint8_t> ids(60);
  EXPECT_FALSE(InsertSlice(Mask::Create(2, 2), dims, 2, 0, ids).ok());
  EXPECT_FALSE(InsertSlice(Mask::Create(4, 5), dims, 2, 3, ids).ok());
}

TEST(NiftiNormalizeTest, ZScoreHasZeroMeanAndUnitStd) {
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(200.0f + static_cast<float>(i % 37) * 3.0f);
  NormalizeIntensities(v, {MrNormalization::kZScore});
  double mean = 0, sq = 0;
  for (float x : v) mean += x;
  mean /= v.size();
  for (float x : v) sq += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0, 1e-5);
  EXPECT_NEAR(std::sqrt(sq / v.size()), 1, 1e-5);
  std::vector<float> constant(10, 5.0f);
  NormalizeIntensities(constant, {MrNormalization::kZScore});
  EXPECT_EQ(constant, std::vector<float>(10, 0.0f));
}

TEST(NiftiNormalizeTest, PercentileClipsOutliersAndScalesToUnit) {
  std::vector<float> v;
  for (int i = 0; i <= 1000; ++i) v.push_back(static_cast<float>(i));
  v[500] = 1e6f;  // a hot voxel must not squash the rest
  NormalizeIntensities(v, {MrNormalization::kPercentile, 0.5, 99.5});
  EXPECT_EQ(*std::min_element(v.begin(), v.end()), 0.0f);
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 1.0f);
  EXPECT_EQ(v[500], 1.0f);
  EXPECT_EQ(v[0], 0.0f);
  // 0.5th percentile of 0..1000 (one replaced) is ~5, 99.5th ~996: 501 sits mid-way.
  EXPECT_NEAR(v[501], (501.0 - 5.0) / (996.0 - 5.0), 0.01);
  EXPECT_EQ(*ParseMrNormalization("zscore"), MrNormalization::kZScore);
  EXPECT_FALSE(ParseMrNormalization("minmax").ok());
}

// --- The synthetic MR generator.

TEST(SyntheticMrTest, DeterministicWithAllClassesAndContrast) {
  auto a = GenerateSyntheticMrVolume(3, 0);
  auto b = GenerateSyntheticMrVolume(3, 0);
  auto c = GenerateSyntheticMrVolume(3, 1);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->image.voxels, b->image.voxels);
  EXPECT_NE(a->image.voxels, c->image.voxels);
  EXPECT_EQ(a->image.dims, (std::array<int64_t, 3>{64, 64, 16}));
  double sum[3] = {0, 0, 0};
  size_t count[3] = {0, 0, 0};
  for (size_t i = 0; i < a->labels.ids.size(); ++i) {
    sum[a->labels.ids[i]] += a->image.voxels[i];
    ++count[a->labels.ids[i]];
  }
  for (int k = 0; k < 3; ++k) ASSERT_GT(count[k], 20u) << "class " << k;
  EXPECT_GT(sum[1] / count[1], 1.5 * sum[0] / count[0]);  // organ bright
  EXPECT_LT(sum[2] / count[2], 0.5 * sum[1] / count[1]);  // lesion dark inside it
}

TEST_F(NiftiTest, SyntheticMrDatasetReadsBack) {
  ASSERT_TRUE(WriteSyntheticMrDataset(dir_.path(), 2, 5).ok());
  for (const char* id : {"mr_000", "mr_001"}) {
    auto image = ReadNifti(dir_ / (std::string("imagesTr/") + id + "_0000.nii.gz"));
    auto labels = ReadNiftiLabels(dir_ / (std::string("labelsTr/") + id + ".nii.gz"));
    ASSERT_TRUE(image.ok()) << image.status();
    ASSERT_TRUE(labels.ok()) << labels.status();
    EXPECT_TRUE(CheckSameShape(*image, *labels).ok());
    EXPECT_LT(image->sform[0][0], 0);  // the x flip survives the file
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ / "dataset.json"));
  EXPECT_EQ(WriteSyntheticMrDataset(dir_.path(), 1, 5).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace segserve::data
