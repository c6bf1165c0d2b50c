#include "server/model/torch_zip.h"

#include <torch/torch.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;

struct ZipRecord {
  std::string name;
  std::string data;
  uint16_t flags = 0;
  uint16_t method = 0;
  bool corrupt_crc = false;
};

void PutLe(std::string& out, uint32_t value, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// A minimal zip writer, laid out as PyTorchStreamWriter lays out torch.save files: local
// header + stored data per record, then the central directory and its end record.
std::string MakeZip(const std::vector<ZipRecord>& records) {
  std::string out;
  std::vector<uint32_t> offsets;
  for (const ZipRecord& r : records) {
    offsets.push_back(static_cast<uint32_t>(out.size()));
    PutLe(out, 0x04034b50, 4);
    PutLe(out, 20, 2);
    PutLe(out, r.flags, 2);
    PutLe(out, r.method, 2);
    PutLe(out, 0, 4);  // time, date
    PutLe(out, 0, 4);  // CRC (the directory's counts)
    PutLe(out, static_cast<uint32_t>(r.data.size()), 4);
    PutLe(out, static_cast<uint32_t>(r.data.size()), 4);
    PutLe(out, static_cast<uint32_t>(r.name.size()), 2);
    PutLe(out, 0, 2);
    out += r.name + r.data;
  }
  const uint32_t dir_offset = static_cast<uint32_t>(out.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const ZipRecord& r = records[i];
    uint32_t crc = static_cast<uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(r.data.data()), r.data.size()));
    if (r.corrupt_crc) crc ^= 1;
    PutLe(out, 0x02014b50, 4);
    PutLe(out, 20, 2);
    PutLe(out, 20, 2);
    PutLe(out, r.flags, 2);
    PutLe(out, r.method, 2);
    PutLe(out, 0, 4);
    PutLe(out, crc, 4);
    PutLe(out, static_cast<uint32_t>(r.data.size()), 4);
    PutLe(out, static_cast<uint32_t>(r.data.size()), 4);
    PutLe(out, static_cast<uint32_t>(r.name.size()), 2);
    PutLe(out, 0, 2);   // extra
    PutLe(out, 0, 2);   // comment
    PutLe(out, 0, 4);   // disk, internal attributes
    PutLe(out, 0, 4);   // external attributes
    PutLe(out, offsets[i], 4);
    out += r.name;
  }
  const uint32_t dir_size = static_cast<uint32_t>(out.size()) - dir_offset;
  PutLe(out, 0x06054b50, 4);
  PutLe(out, 0, 4);
  PutLe(out, static_cast<uint32_t>(records.size()), 2);
  PutLe(out, static_cast<uint32_t>(records.size()), 2);
  PutLe(out, dir_size, 4);
  PutLe(out, dir_offset, 4);
  PutLe(out, 0, 2);
  return out;
}

std::vector<ZipRecord> Valid() {
  return {{"archive/data.pkl", "pickle bytes"}, {"archive/data/0", "storage"},
          {"archive/version", "3\n"}};
}

TEST(TorchZipTest, ReadsRecordsOfAValidArchive) {
  const std::string bytes = MakeZip(Valid());
  auto archive = TorchZipArchive::Open(bytes);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ(archive->prefix(), "archive");
  EXPECT_EQ(archive->version(), 3u);
  auto pickle = archive->Record("data.pkl");
  ASSERT_TRUE(pickle.ok()) << pickle.status();
  EXPECT_EQ(*pickle, "pickle bytes");
  EXPECT_EQ(*archive->Record("data/0"), "storage");
  EXPECT_EQ(archive->Record("data/1").status().code(), absl::StatusCode::kNotFound);
}

TEST(TorchZipTest, ReadsWhatLibTorchWrites) {
  c10::Dict<std::string, torch::Tensor> dict;
  dict.insert("w", torch::arange(6, torch::kFloat32));
  const std::vector<char> saved = torch::pickle_save(dict);
  const std::string bytes(saved.begin(), saved.end());
  auto archive = TorchZipArchive::Open(bytes);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_TRUE(archive->Record("data.pkl").ok());
  auto storage = archive->Record("data/0");
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_EQ(storage->size(), 6 * sizeof(float));
}

TEST(TorchZipTest, DataVersionIsPreferredOverVersion) {
  std::vector<ZipRecord> records = Valid();
  records.push_back({"archive/.data/version", "4\n"});
  const std::string bytes = MakeZip(records);
  auto archive = TorchZipArchive::Open(bytes);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ(archive->version(), 4u);
}

// Each of these made LibTorch's PyTorchStreamReader throw from its constructor (leaking
// miniz's state) or is a variant of such an input; each must be a clean InvalidArgument.
TEST(TorchZipTest, MalformedArchivesAreRefusedNamingTheProblem) {
  struct Case {
    const char* what;
    std::vector<ZipRecord> records;
    const char* message;
  };
  std::vector<Case> cases = {
      {"no version", {{"archive/data.pkl", "p"}}, "no version record"},
      {"case-variant version", {{"archive/data.pkl", "p"}, {"archive/VERSION", "3"}},
       "no version record"},
      {"version overflowing 64 bits",
       {{"archive/data.pkl", "p"}, {"archive/version", "18446744073709551617"}},
       "version record is unreadable"},
      {"version out of range", {{"archive/data.pkl", "p"}, {"archive/version", "11"}},
       "version 11 is not supported"},
      {"version not a number", {{"archive/data.pkl", "p"}, {"archive/version", " 3"}},
       "not a number"},
      {"empty version", {{"archive/data.pkl", "p"}, {"archive/version", ""}}, "unreadable"},
      {"bad version CRC",
       {{"archive/data.pkl", "p"}, {"archive/version", "3", 0, 0, /*corrupt_crc=*/true}},
       "CRC-32"},
      {"two folders", {{"archive/data.pkl", "p"}, {"other/version", "3"}}, "archive folder"},
      {"no folder", {{"data.pkl", "p"}, {"archive/version", "3"}}, "outside an archive folder"},
      {"folder itself", {{"archive/", ""}, {"archive/version", "3"}}, "archive folder"},
      {"duplicate record",
       {{"archive/version", "3"}, {"archive/version", "4"}}, "twice"},
      {"strong encryption", {{"archive/version", "3", /*flags=*/0x40}}, "encrypted"},
      {"encrypted", {{"archive/version", "3", /*flags=*/0x1}}, "encrypted"},
      {"deflated", {{"archive/version", "3", 0, /*method=*/8}}, "compressed"},
      {"empty archive", {}, "no version record"},
  };
  for (const Case& c : cases) {
    const std::string bytes = MakeZip(c.records);
    auto archive = TorchZipArchive::Open(bytes);
    EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(archive.status().message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(TorchZipTest, Zip64AndMultiDiskAreRefused) {
  std::string bytes = MakeZip(Valid());
  std::string zip64 = bytes;
  zip64[zip64.size() - 22 + 10] = '\xff';
  zip64[zip64.size() - 22 + 11] = '\xff';
  EXPECT_THAT(TorchZipArchive::Open(zip64).status().message(), HasSubstr("Zip64"));
  std::string multi = bytes;
  multi[multi.size() - 22 + 4] = 1;
  EXPECT_THAT(TorchZipArchive::Open(multi).status().message(), HasSubstr("multi-disk"));
}

TEST(TorchZipTest, CorruptRecordFailsItsCrcWhenRead) {
  std::vector<ZipRecord> records = Valid();
  records[1].corrupt_crc = true;
  const std::string bytes = MakeZip(records);
  auto archive = TorchZipArchive::Open(bytes);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_THAT(archive->Record("data/0").status().message(), HasSubstr("CRC-32"));
}

// Every truncation and every single-byte change of a valid archive is either refused or
// read within bounds (the sanitizer build checks the "within bounds").
TEST(TorchZipTest, TruncatedOrFlippedArchivesNeverReadOutOfBounds) {
  const std::string bytes = MakeZip(Valid());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string cut = bytes.substr(0, n);
    EXPECT_FALSE(TorchZipArchive::Open(cut).ok()) << "length " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int delta : {1, 0x80, 0xff}) {
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] + delta);
      auto archive = TorchZipArchive::Open(flipped);
      if (!archive.ok()) continue;
      for (const char* name : {"data.pkl", "data/0", "version"}) {
        auto record = archive->Record(name);
        if (record.ok()) {
          ASSERT_GE(record->data(), flipped.data());
          ASSERT_LE(record->data() + record->size(), flipped.data() + flipped.size());
        }
      }
    }
  }
}

}  // namespace
}  // namespace segserve::model
