#include "server/common/sha256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstdio>

namespace segserve::common {
namespace {

// OpenSSL fails only when out of memory or misconfigured (no SHA-256 provider); a checksum
// that silently came out wrong would be worse than stopping.
void CheckOpenSsl(int ok, const char* call) {
  if (ok == 1) return;
  std::fprintf(stderr, "segserve: OpenSSL %s failed for SHA-256\n", call);
  std::abort();
}

// Fetched once: EVP_sha256() would look the implementation up again on every init.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  CheckOpenSsl(context_->ctx != nullptr ? 1 : 0, "EVP_MD_CTX_new");
  CheckOpenSsl(Sha256Md() != nullptr ? 1 : 0, "EVP_MD_fetch");
  CheckOpenSsl(EVP_DigestInit_ex(context_->ctx, Sha256Md(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;

void Sha256::Update(std::string_view data) {
  if (data.empty()) return;
  CheckOpenSsl(EVP_DigestUpdate(context_->ctx, data.data(), data.size()), "EVP_DigestUpdate");
}

Sha256Digest Sha256::Finish() {
  Sha256Digest digest{};
  unsigned int size = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(context_->ctx, digest.data(), &size), "EVP_DigestFinal_ex");
  CheckOpenSsl(size == digest.size() ? 1 : 0, "EVP_DigestFinal_ex size");
  return digest;
}

Sha256Digest Sha256Of(std::string_view data) {
  Sha256 hasher;
  hasher.Update(data);
  return hasher.Finish();
}

std::string DigestHex(const Sha256Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * digest.size(), '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) { return DigestHex(Sha256Of(data)); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> FileSha256Hex(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError("cannot open " + path);
  Sha256 sha;
  std::string buffer(1 << 20, '\0');
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    sha.Update(std::string_view(buffer.data(), n));
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::DataLossError("cannot read " + path);
  return DigestHex(sha.Finish());
}

}  // namespace segserve::common
