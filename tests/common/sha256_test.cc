#include "server/common/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace segserve::common {
namespace {

// FIPS 180-4 / NIST CSRC example vectors.
TEST(Sha256, MatchesFips180Vectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 448 bits.
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // 896 bits.
  EXPECT_EQ(Sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                      "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Digests the hand-written implementation (before OpenSSL) produced, cross-checked with
// coreutils' sha256sum: token hashes already in tokens files must not change.
TEST(Sha256, MatchesDigestsOfThePreviousImplementation) {
  EXPECT_EQ(Sha256Hex("t1"), "628b49d96dcde97a430dd4f597705899e09a968f793491e4b704cae33a40dc02");
  EXPECT_EQ(Sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_EQ(Sha256Hex("segserve"),
            "8b49b88a6456438119f2c005c15513241ac976fb34fed851a6b106acffdf26a2");
}

TEST(Sha256, IncrementalUpdatesSplitAtEveryBoundaryEqualOneShot) {
  // 200 bytes cross three 64-byte blocks and the 55/56-byte padding edge.
  std::string data;
  for (int i = 0; i < 200; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  const std::string expected = Sha256Hex(data);
  for (size_t split = 0; split <= data.size(); ++split) {
    Sha256 hasher;
    hasher.Update(std::string_view(data).substr(0, split));
    hasher.Update(std::string_view(data).substr(split));
    EXPECT_EQ(DigestHex(hasher.Finish()), expected) << "split at " << split;
  }
  for (size_t chunk = 1; chunk <= 130; ++chunk) {
    Sha256 hasher;
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      hasher.Update(std::string_view(data).substr(pos, chunk));
    }
    EXPECT_EQ(DigestHex(hasher.Finish()), expected) << "chunks of " << chunk;
  }
}

TEST(Sha256, ThousandUpdatesOfAThousandAsMatchTheMillionAVector) {
  Sha256 hasher;
  const std::string a(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.Update(a);
  EXPECT_EQ(DigestHex(hasher.Finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, DigestAndHexAgree) {
  const Sha256Digest digest = Sha256Of("abc");
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[31], 0xad);
  EXPECT_EQ(DigestHex(digest), Sha256Hex("abc"));
}

TEST(ConstantTimeEquals, ComparesWholeContentsAndSizes) {
  const std::string a(32, 'x');
  std::string first = a, last = a;
  first[0] = 'y';
  last[31] = 'y';
  EXPECT_TRUE(ConstantTimeEquals(a, std::string(32, 'x')));
  EXPECT_FALSE(ConstantTimeEquals(a, first));
  EXPECT_FALSE(ConstantTimeEquals(a, last));
  EXPECT_FALSE(ConstantTimeEquals(a, a.substr(0, 31)));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace segserve::common
